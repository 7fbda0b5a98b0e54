"""Schemathesis checks of our own for `.ci/fuzz`: every error answer is the JSON envelope."""

import json

import schemathesis


@schemathesis.check
def error_envelope(ctx, response, case):
    """A 4xx/5xx answer is `application/json` with `success: false` and a string `code`."""
    if response.status_code < 400:
        return None
    # The OAuth callback is a page a browser lands on: it answers HTML, by design
    # (docs/platforms/keap.md).
    if case.path.startswith("/oauth/"):
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} answered {content_type or 'no content type'}, not the JSON envelope"
        )
    try:
        body = json.loads(response.content or b"null")
    except ValueError as e:
        raise AssertionError(f"{response.status_code} body is not JSON: {e}") from None
    if not isinstance(body, dict) or body.get("success") is not False or not isinstance(body.get("code"), str):
        raise AssertionError(f"{response.status_code} body is not the error envelope: {body!r:.300}")
    return None
