# Sourced by .ci/fuzz and .ci/client: builds `sharpsend` and starts `serve --sandbox` on a fresh
# SQLite folder at 127.0.0.1:$PORT with a known admin token; sets DATA, TOKEN, API and SERVER
# and stops the server (and removes the folder) when the sourcing script exits.
# Our own API rate limits are off: they have their own tests, and here they would answer 429
# before most generated requests reach a handler.
start_sandbox() {
  local port=$1
  cargo build -q --bin sharpsend
  DATA=$(mktemp -d)
  TOKEN="ci-admin-token-$(date +%s)-0123456789"
  local bin="$PWD/target/debug/sharpsend"
  # Run from the temporary folder: the data folder (database, master key) is ./data there.
  (cd "$DATA" && SHARPSEND_LISTEN="127.0.0.1:$port" SHARPSEND_ADMIN_TOKEN="$TOKEN" \
    SHARPSEND_API_RATE_LIMIT=0 SHARPSEND_TEST_CONNECTION_RATE_LIMIT=0 SHARPSEND_AUTH_FAILURE_RATE_LIMIT=0 \
    exec "$bin" serve --sandbox >"$DATA/serve.log" 2>&1) &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.5
  done
  API="http://127.0.0.1:$port/api"
}
