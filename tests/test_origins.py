"""ALLOWED_ORIGINS: CORS grants only the listed pages; chat requests from other pages get a clear 403."""

from __future__ import annotations

from tests.conftest import AppFactory

SHOP = "https://shop.example.com"
QUESTION = {"message": "What services do you offer?"}


def test_listed_origins_get_cors_and_answers(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": f"{SHOP}, https://www.example.com/"})
    response = client.post("/chat", json=QUESTION, headers={"Origin": SHOP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    exposed = response.headers["access-control-expose-headers"]
    assert "Retry-After" in exposed and "X-RateLimit-Remaining" in exposed
    # A trailing slash or other case in the setting does not matter.
    assert (
        client.post("/chat", json=QUESTION, headers={"Origin": "https://www.example.com"}).status_code == 200
    )


def test_other_origins_are_refused_with_a_clear_message(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": SHOP})
    for method, path, body in [
        ("POST", "/chat", QUESTION),
        ("POST", "/chat/stream", QUESTION),
        ("GET", "/history/abc", None),
        ("DELETE", "/history/abc", None),
    ]:
        response = client.request(method, path, json=body, headers={"Origin": "https://evil.example"})
        assert response.status_code == 403, path
        assert response.json() == {
            "error": "This chatbot does not accept requests from https://evil.example."
        }
        assert "access-control-allow-origin" not in response.headers
    # Server-side callers send no Origin: they are not a browser page, and are let through.
    assert client.post("/chat", json=QUESTION).status_code == 200


def test_refused_origins_do_not_use_up_the_rate_limit(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": SHOP, "rate_limit_chat": "2/minute"})
    for _ in range(5):
        client.post("/chat", json=QUESTION, headers={"Origin": "https://evil.example"})
    assert client.post("/chat", json=QUESTION, headers={"Origin": SHOP}).status_code == 200


def test_preflight_is_answered_for_listed_origins_only(make_client: AppFactory) -> None:
    client = make_client(api={"allowed_origins": SHOP})
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/chat", headers={"Origin": SHOP, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SHOP
    refused = client.options("/chat", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_empty_setting_allows_any_origin(make_client: AppFactory) -> None:
    client = make_client()
    response = client.post("/chat", json=QUESTION, headers={"Origin": "https://anywhere.example"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    limited = make_client(api={"rate_limit_chat": "1/minute"})
    limited.post("/chat", json=QUESTION, headers={"Origin": "https://anywhere.example"})
    over = limited.post("/chat", json=QUESTION, headers={"Origin": "https://anywhere.example"})
    assert over.status_code == 429 and over.headers["access-control-allow-origin"] == "*"
    assert "Retry-After" in over.headers["access-control-expose-headers"]
