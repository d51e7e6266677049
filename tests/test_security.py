"""Admin calls need the token (or this machine), and X-Forwarded-For counts only from trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AppFactory

ADMIN_CALLS = [
    ("GET", "/cache/stats"),
    ("DELETE", "/cache"),
    ("GET", "/admin/knowledge"),
    ("GET", "/admin/reindex"),  # 404 until a reindex ran: past the check, that is
]
TOKEN = "s3cret-admin-token-with-enough-entropy"


def call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, **kwargs)


def as_visitor(client: TestClient, host: str) -> TestClient:
    """The same app, reached from another address (the lifespan already ran)."""
    return TestClient(client.app, client=(host, 40000))


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_without_a_token_admin_calls_come_from_this_machine_only(
    make_client: AppFactory, method: str, path: str
) -> None:
    local = make_client()
    assert call(local, method, path).status_code in {200, 404}

    remote = call(as_visitor(local, "203.0.113.7"), method, path)
    assert remote.status_code == 403
    assert remote.json() == {
        "error": "Admin calls are accepted from this machine only; set ADMIN_TOKEN to call remotely."
    }


@pytest.mark.parametrize(("method", "path"), ADMIN_CALLS)
def test_with_a_token_every_admin_call_needs_it(make_client: AppFactory, method: str, path: str) -> None:
    local = make_client(api={"admin_token": TOKEN})
    remote = as_visitor(local, "203.0.113.7")

    missing = call(local, method, path)  # this machine too: once set, the token is the rule
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["error"]
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}"):
        status = call(remote, method, path, headers={"Authorization": wrong}).status_code
        assert status in {401, 403}, wrong
    assert call(remote, method, path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code in {200, 404}
    assert call(remote, method, path, headers={"Authorization": f"bearer  {TOKEN} "}).status_code in {
        200,
        404,
    }


def test_visitor_endpoints_need_no_token(make_client: AppFactory) -> None:
    remote = as_visitor(make_client(api={"admin_token": TOKEN}), "203.0.113.7")
    assert remote.post("/chat", json={"message": "What services do you offer?"}).status_code == 200
    assert remote.get("/health").status_code == 200


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "2/minute"})
    statuses = [
        client.post(
            "/chat",
            json={"message": "What services do you offer?"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        ).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_a_trusted_proxy_passes_the_visitor_address_on(make_client: AppFactory) -> None:
    client = make_client(api={"rate_limit_chat": "2/minute", "trusted_proxies": "127.0.0.1"})
    body = {"message": "What services do you offer?"}

    def ask(via: TestClient, visitor: str) -> int:
        return via.post("/chat", json=body, headers={"X-Forwarded-For": visitor}).status_code

    assert [ask(client, "198.51.100.1") for _ in range(3)] == [200, 200, 429]
    assert ask(client, "198.51.100.2") == 200
    # A visitor that is not the proxy cannot choose an address by sending the header itself.
    stranger = as_visitor(client, "203.0.113.9")
    assert [ask(stranger, f"198.51.100.{n}") for n in range(10, 13)] == [200, 200, 429]
    # Behind a proxy on this machine, a remote visitor is not "this machine" for the admin check.
    assert client.get("/cache/stats", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403
