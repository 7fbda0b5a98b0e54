"""The README's first session, driven through a client generated from docs/openapi.json.

Generate the client (openapi-python-client, see README.md beside this file), start
`sharpsend serve --sandbox`, then:

    SHARPSEND_URL=http://127.0.0.1:8080 SHARPSEND_ADMIN_TOKEN=ssa_... python first_session.py

Every call goes through the generated, typed functions: a success decodes as the typed `data`
envelope, and every error decodes as the typed `ErrorBody` with an `ErrorCode` enum member.
The script exits non-zero on anything unexpected, so CI runs it as a test (.ci/client).
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from sharp_send_integrations_api_client import AuthenticatedClient
from sharp_send_integrations_api_client.api.admin import create_api_key
from sharp_send_integrations_api_client.api.customerio import customerio_connect
from sharp_send_integrations_api_client.api.integrations import (
    list_campaigns,
    list_contacts,
    list_integrations,
)
from sharp_send_integrations_api_client.api.iterable import iterable_connect
from sharp_send_integrations_api_client.api.keap import keap_connect
from sharp_send_integrations_api_client.api.sync import get_sync_job, start_sync
from sharp_send_integrations_api_client.models import (
    IterableConnectRequest,
    CustomerioConnectBody,
    ErrorBody,
    ErrorCode,
    KeapConnectBody,
    Platform,
    Region,
    SyncRequest,
    SyncStatus,
)

# The sandbox's credentials, as `serve --sandbox` prints them.
ITERABLE_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
CUSTOMERIO = {
    "site_id": "5f1a9c3e7b2d4a6c8e01",
    "tracking_key": "a7d3f9c1e5b2048d6f3a",
    "api_key": "7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e",
}
KEAP_KEY = "KeapAK-sandbox-service-account-key-0001"


def ok(response, what: str):
    """The typed `data` of a success; stops the session on an error, printing its envelope."""
    body = response.parsed
    if isinstance(body, ErrorBody) or body is None or response.status_code >= 400:
        sys.exit(f"{what}: HTTP {response.status_code}: {body!r}")
    print(f"{what}: HTTP {response.status_code}")
    return body.data


def main() -> None:
    base = os.environ.get("SHARPSEND_URL", "http://127.0.0.1:8080")
    admin = AuthenticatedClient(base_url=base, token=os.environ["SHARPSEND_ADMIN_TOKEN"])
    publisher = f"example-{uuid.uuid4().hex[:8]}"

    # A publisher API key, shown once; the rest of the session acts as the publisher.
    key = ok(create_api_key.sync_detailed(publisher, client=admin), "create a publisher key")
    me = AuthenticatedClient(base_url=base, token=key.key)
    assert ok(list_integrations.sync_detailed(publisher, client=me), "list integrations").integrations == []

    # Connect each platform to its sandbox simulator.
    ok(
        iterable_connect.sync_detailed(
            client=me,
            body=IterableConnectRequest(api_key=ITERABLE_KEY, publisher_id=publisher, region=Region.US),
        ),
        "connect Iterable",
    )
    ok(
        customerio_connect.sync_detailed(
            client=me, body=CustomerioConnectBody(publisher_id=publisher, region=Region.US, **CUSTOMERIO)
        ),
        "connect Customer.io",
    )
    ok(
        keap_connect.sync_detailed(client=me, body=KeapConnectBody(publisher_id=publisher, api_key=KEAP_KEY)),
        "connect Keap",
    )
    connected = ok(list_integrations.sync_detailed(publisher, client=me), "list integrations").integrations
    assert sorted(i.platform.value for i in connected) == ["customerio", "iterable", "keap"], connected

    # Read campaigns and contacts.
    campaigns = ok(
        list_campaigns.sync_detailed(publisher, Platform.ITERABLE, client=me, limit=5), "Iterable campaigns"
    ).campaigns
    assert 0 < len(campaigns) <= 5, campaigns
    contacts = ok(list_contacts.sync_detailed(publisher, Platform.KEAP, client=me, limit=5), "Keap contacts").contacts
    assert 0 < len(contacts) <= 5, contacts

    # Start a sync (an Idempotency-Key makes a retry safe) and follow the job to its end. Events
    # are left out: Iterable's export allows 4 requests a minute per event type, which the
    # simulator enforces, so they take minutes.
    idem = f"sync-{uuid.uuid4()}"
    body = SyncRequest(kinds=["campaigns", "lists", "templates", "users"])
    queued = ok(
        start_sync.sync_detailed(publisher, Platform.ITERABLE, client=me, body=body, idempotency_key=idem),
        "start a sync",
    )
    replay = start_sync.sync_detailed(publisher, Platform.ITERABLE, client=me, body=body, idempotency_key=idem)
    assert replay.headers.get("idempotency-replayed") == "true", replay.headers
    assert replay.parsed.data.job_id == queued.job_id
    deadline = time.monotonic() + 120
    while True:
        job = ok(get_sync_job.sync_detailed(publisher, Platform.ITERABLE, queued.job_id, client=me), "sync job")
        if job.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED):
            break
        if time.monotonic() > deadline:
            sys.exit(f"the sync did not finish in 120 s: {job!r}")
        time.sleep(0.5)
    assert job.status == SyncStatus.SUCCEEDED, job
    print(f"sync {job.job_id}: {job.status.value}, {job.pages} pages")

    # Errors decode as the typed envelope: a wrong key, and another publisher's data.
    wrong = AuthenticatedClient(base_url=base, token="ssk_not_a_real_key_0000000000000000")
    denied = list_integrations.sync_detailed(publisher, client=wrong)
    assert denied.status_code == 401 and isinstance(denied.parsed, ErrorBody), denied
    assert denied.parsed.code == ErrorCode.UNAUTHORIZED and denied.parsed.success is False
    print(f"a wrong key: {denied.parsed.code.value}: {denied.parsed.error}")
    foreign = list_integrations.sync_detailed("someone-else", client=me)
    assert isinstance(foreign.parsed, ErrorBody), foreign
    print(f"another publisher: HTTP {foreign.status_code} {foreign.parsed.code.value}: {foreign.parsed.error}")
    bad = list_campaigns.sync_detailed(publisher, Platform.ITERABLE, client=me, limit=100000)
    assert bad.status_code == 400 and isinstance(bad.parsed, ErrorBody), bad
    assert bad.parsed.code == ErrorCode.VALIDATION_ERROR, bad.parsed
    print(f"a limit too large: {bad.parsed.code.value}: {bad.parsed.error}")
    print("first session: ok")


if __name__ == "__main__":
    main()
