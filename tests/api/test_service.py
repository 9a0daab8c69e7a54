"""Health, metrics, request ids, security headers, CORS, the auth rate limit, docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import PASSWORD, REDIS_URL, reset_singletons

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@asynccontextmanager
async def app_client(
    monkeypatch: pytest.MonkeyPatch, ip: str = "127.0.0.1", **env: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a new app built after changing the environment (settings are read at build time)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    await reset_singletons()
    from atom_core.interfaces.api.app import create_api

    transport = httpx.ASGITransport(app=create_api(), raise_app_exceptions=False, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://atom.test") as http:
        yield http


# --- health and metrics ------------------------------------------------------------


async def test_health_is_ok_with_every_check(client: httpx.AsyncClient, backend: str) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    redis_state = "disabled" if backend == "embedded" else "ok"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": redis_state, "vector_store": "ok"},
    }


async def test_health_is_degraded_when_redis_is_down(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch, ATOM_REDIS_URL="redis://:hunter2-secret@127.0.0.1:1/0") as http:
        response = await http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["vector_store"] == "ok"
    assert body["checks"]["redis"].startswith("error")
    assert "hunter2" not in response.text and "127.0.0.1" not in response.text


COLD_HEALTH = """
import asyncio, json
import httpx
from atom_core.interfaces.api.app import create_api

async def main():
    transport = httpx.ASGITransport(app=create_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://atom.test") as http:
        response = await http.get("/health")
    print(json.dumps({"status": response.status_code, "body": response.json()}))

asyncio.run(main())
"""


def test_first_health_check_of_a_fresh_process_is_ok(tmp_path: Path) -> None:
    """Loading the vector store's code (seconds, in a fresh process) must not
    count against the checks' timeouts and report a healthy node as degraded."""
    env = {"PATH": str(Path(sys.executable).parent), "ATOM_HOME": str(tmp_path / "home")}
    subprocess.run([str(Path(sys.executable).parent / "atom"), "db", "upgrade"], cwd=tmp_path, env=env, check=True)
    done = subprocess.run(
        [sys.executable, "-c", COLD_HEALTH], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["body"]["status"] == "ok", result


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    unknown = f"/api/v1/no-such-{uuid.uuid4().hex}"
    assert (await client.get(unknown)).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE atom_http_requests_total counter" in response.text
    assert re.search(r'^atom_http_requests_total\{method="GET",route="/health",status="200"\} \d', response.text, re.M)
    assert "atom_http_request_duration_seconds_bucket" in response.text
    assert unknown not in response.text  # routes are templates: unknown paths add no new series


# --- request ids and headers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/metrics"), ("GET", "/api/v1/me"), ("POST", LOGIN), ("GET", "/api/v1/nope")],
)
async def test_every_response_carries_a_request_id(client: httpx.AsyncClient, method: str, path: str) -> None:
    generated = await client.request(method, path, json={})
    assert HEX_ID.match(generated.headers["X-Request-ID"])
    again = await client.request(method, path, json={})
    assert again.headers["X-Request-ID"] != generated.headers["X-Request-ID"]

    echoed = await client.request(method, path, json={}, headers={"X-Request-ID": "trace-42.abc:Z_1"})
    assert echoed.headers["X-Request-ID"] == "trace-42.abc:Z_1"


@pytest.mark.parametrize("supplied", ["a\nb", "a\r\nSet-Cookie: x=1", "x" * 200, "<script>", "a b", "id;drop", ""])
async def test_a_malicious_request_id_is_replaced(client: httpx.AsyncClient, supplied: str) -> None:
    request = client.build_request("GET", "/health")
    request.headers["X-Request-ID"] = supplied
    response = await client.send(request)
    assert response.status_code == 200
    assert HEX_ID.match(response.headers["X-Request-ID"])


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/me"),  # 401
        ("POST", LOGIN),  # 422
        ("GET", "/api/v1/nope"),  # 404
        ("PUT", "/api/v1/me"),  # 405
    ],
)
async def test_security_headers_on_api_responses(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={})
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers


async def test_docs_csp_allows_only_same_origin(client: httpx.AsyncClient) -> None:
    csp = (await client.get("/api/v1/docs")).headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in csp and "*" not in csp and "unsafe-eval" not in csp


async def test_hsts_only_when_configured(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch, ATOM_HSTS_MAX_AGE_S="31536000") as http:
        for path in ("/health", "/api/v1/me", "/api/v1/nope"):
            response = await http.get(path)
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_a_body_over_the_limit_still_gets_the_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, content=b"x" * 1_048_577, headers={"X-Request-ID": "big-1"})
    assert response.status_code == 413
    assert response.headers["X-Request-ID"] == "big-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json()["error"]["code"] == "payload_too_large"


# --- CORS --------------------------------------------------------------------------

ALLOWED = "https://app.example.com"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-tenant-id",
    }


async def test_cors_allows_only_configured_origins(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with app_client(monkeypatch, ATOM_CORS_ORIGINS=f"{ALLOWED}, https://admin.example.com") as http:
        allowed = await http.options(LOGIN, headers=preflight(ALLOWED))
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
        assert "x-tenant-id" in allowed.headers["Access-Control-Allow-Headers"].lower()

        for other in ("https://evil.example.com", "http://app.example.com", "null"):
            refused = await http.options(LOGIN, headers=preflight(other))
            assert refused.status_code >= 400
            assert "Access-Control-Allow-Origin" not in refused.headers

        simple = await http.get("/health", headers={"Origin": ALLOWED})
        assert simple.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "x-request-id" in simple.headers["Access-Control-Expose-Headers"].lower()
        evil = await http.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in evil.headers


async def test_no_cors_without_configured_origins(client: httpx.AsyncClient) -> None:
    refused = await client.options(LOGIN, headers=preflight(ALLOWED))
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in (await client.get("/health", headers={"Origin": ALLOWED})).headers


# --- the auth rate limit ----------------------------------------------------------


def attempt(path: str, n: int) -> dict:
    if path == SIGNUP:
        return {"email": f"user{n}-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD, "tenant_name": f"T{n}"}
    return {"email": "nobody@example.com", "password": "wrong-password-123"}


@pytest.mark.parametrize("paths", [[LOGIN] * 4, [SIGNUP] * 4, [SIGNUP, LOGIN, SIGNUP, LOGIN]])
async def test_auth_rate_limit(backend: str, monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> None:
    async with app_client(monkeypatch, ATOM_AUTH_RATE_LIMIT="3/minute") as http:
        for n, path in enumerate(paths[:3]):
            response = await http.post(path, json=attempt(path, n))
            assert response.status_code in (201, 401), response.text

        limited = await http.post(paths[3], json=attempt(paths[3], 3), headers={"X-Forwarded-For": "10.9.9.9"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        error = limited.json()["error"]
        assert error["code"] == "rate_limited" and error["message"]
        assert HEX_ID.match(limited.headers["X-Request-ID"])

        # Authenticated endpoints are not under the auth limit.
        assert (await http.get("/health")).status_code == 200

    async with app_client(monkeypatch, ip="10.0.0.2") as other_ip:  # the limit is per client address
        assert (await other_ip.post(LOGIN, json=attempt(LOGIN, 0))).status_code == 401

    if backend == "server":  # the counts live in Redis, shared by every server process
        assert redis.Redis.from_url(REDIS_URL).keys("atom*ratelimit*auth*")


# --- OpenAPI, docs, unknown paths -------------------------------------------------------


async def test_openapi_lists_the_identity_paths(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, method in [
        (SIGNUP, "post"),
        (LOGIN, "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/api-keys", "post"),
        ("/api/v1/api-keys", "get"),
        ("/api/v1/api-keys/{key_id}", "delete"),
        ("/api/v1/members", "post"),
        ("/api/v1/members/{user_id}", "delete"),
        ("/health", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path}"
    assert not any("{path}" in p for p in paths)  # the catch-all stays out of the schema


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for cdn in ("jsdelivr", "unpkg", "cdnjs", "googleapis", "//cdn"):
        assert cdn not in html
    assets = re.findall(r'<script[^>]+src="([^"]+)"', html) + re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets), html
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.content
    assert "/api/v1/openapi.json" in html


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/api/v1/whatever", "/api/v1/agents/x/y/z", "/api/v2/me", "/api/"])
async def test_unknown_api_paths_are_a_json_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "not_found" and error["message"]


async def test_wrong_method_on_a_known_path_is_a_json_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/me")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
