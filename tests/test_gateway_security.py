"""One test per safety rule of the gateway, each against a running gateway on loopback,
sending the headers a browser (or an attacker's page) would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localinfer.errors import UsageError
from tests.gateway_harness import RunApp, gateway_app, serve_gateway

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def url(run_app: RunApp, tmp_path: Path) -> str:
    return serve_gateway(run_app, tmp_path,
                         allowed_origins=["http://localhost:3000", "http://127.0.0.1:*"])


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, trust_env=False) as client:
        yield client


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- Host allow-list (DNS rebinding) ----------------------------------------------------

@pytest.mark.parametrize("host", ["evil.com", "localhost.evil.com", "127.0.0.1.nip.io",
                                  "attacker.localhost.com:8642", "localhost.", "[::2]:1",
                                  "127.0.0.2", "bad host"])
def test_foreign_host_header_is_refused(http: httpx.Client, host: str) -> None:
    response = http.post("/v1/chat/completions", json=CHAT, headers={"host": host})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "host_not_allowed"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:{port}", "[::1]:{port}",
                                  "LOCALHOST:{port}"])
def test_loopback_host_names_are_accepted_on_any_port(http: httpx.Client, url: str,
                                                      host: str) -> None:
    response = http.get("/v1/models", headers={"host": host.format(port=port_of(url))})
    assert response.status_code == 200


def test_allow_listed_host_is_accepted(run_app: RunApp, tmp_path: Path) -> None:
    url = serve_gateway(run_app, tmp_path, allowed_hosts=["devbox.internal"])
    assert httpx.get(url + "/v1/models", headers={"host": "devbox.internal:80"}).status_code \
        == 200
    assert httpx.get(url + "/v1/models", headers={"host": "other.internal"}).status_code == 403


# -- Origin allow-list, no wildcard CORS ------------------------------------------------

@pytest.mark.parametrize("origin", [
    "http://evil.com", "http://localhost.evil.com", "http://127.0.0.1.evil.com",
    "http://localhost:3000.evil.com", "http://localhost:3001", "https://localhost:3000",
    "http://evil.com#@localhost:3000", "http://localhost:3000@evil.com", "null", "file://",
])
def test_foreign_and_look_alike_origins_are_refused(http: httpx.Client, origin: str) -> None:
    response = http.post("/v1/chat/completions", json=CHAT, headers={"origin": origin})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


def test_own_origin_is_allowed_and_echoed_never_wildcard(http: httpx.Client, url: str) -> None:
    response = http.post("/v1/chat/completions", json=CHAT, headers={"origin": url})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == url
    assert "x-localinfer-tier" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:5173"])
def test_allow_listed_origins_are_allowed(http: httpx.Client, origin: str) -> None:
    response = http.get("/v1/models", headers={"origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["vary"] == "Origin"


def test_wildcard_origin_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="wildcard"):
        gateway_app(tmp_path, [], allowed_origins=["*"])


# -- Fetch metadata: cross-site no-cors requests ----------------------------------------

@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_cross_site_request_without_allowed_origin_is_refused(http: httpx.Client,
                                                              site: str) -> None:
    # What <img src> or <script src> on another site sends: no Origin, Sec-Fetch-Site.
    response = http.get("/v1/models", headers={"sec-fetch-site": site,
                                               "sec-fetch-mode": "no-cors"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_site_refused"


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_same_origin_and_typed_url_requests_pass(http: httpx.Client, site: str) -> None:
    assert http.get("/v1/models", headers={"sec-fetch-site": site}).status_code == 200


# -- Preflights, Private Network Access ------------------------------------------------

def preflight(http: httpx.Client, origin: str, pna: bool) -> httpx.Response:
    headers = {"origin": origin, "access-control-request-method": "POST",
               "access-control-request-headers": "content-type, authorization"}
    if pna:
        headers["access-control-request-private-network"] = "true"
    return http.options("/v1/chat/completions", headers=headers)


def test_private_network_preflight_answered_for_allowed_origin(http: httpx.Client) -> None:
    response = preflight(http, "http://localhost:3000", pna=True)
    assert response.status_code == 204
    assert response.headers["access-control-allow-private-network"] == "true"
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "content-type" in response.headers["access-control-allow-headers"]


def test_private_network_preflight_refused_for_other_origins(http: httpx.Client) -> None:
    response = preflight(http, "https://public.example", pna=True)
    assert response.status_code == 403
    assert "access-control-allow-private-network" not in response.headers
    assert "access-control-allow-origin" not in response.headers


def test_cors_preflight_without_pna_gets_no_pna_header(http: httpx.Client) -> None:
    response = preflight(http, "http://localhost:3000", pna=False)
    assert response.status_code == 204
    assert "access-control-allow-private-network" not in response.headers


# -- Bearer token -----------------------------------------------------------------------

def test_token_required_when_set(run_app: RunApp, tmp_path: Path) -> None:
    url = serve_gateway(run_app, tmp_path, token="s3cret")
    missing = httpx.post(url + "/v1/chat/completions", json=CHAT)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(url + "/v1/chat/completions", json=CHAT,
                       headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.post(url + "/v1/chat/completions", json=CHAT,
                       headers={"authorization": "Bearer s3cret"})
    assert right.status_code == 200
    # Discovery must still recognise the gateway without the token.
    assert httpx.get(url + "/health").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_token_required_to_bind_beyond_loopback(tmp_path: Path, host: str) -> None:
    with pytest.raises(UsageError, match="token"):
        gateway_app(tmp_path, [], host=host)
    gateway_app(tmp_path, [], host=host, token="t")  # with a token it builds


# -- Bodies -----------------------------------------------------------------------------

def test_body_over_the_cap_is_413(run_app: RunApp, tmp_path: Path) -> None:
    url = serve_gateway(run_app, tmp_path, max_body_bytes=4096)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert httpx.post(url + "/v1/chat/completions", json=big).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    response = httpx.post(url + "/v1/chat/completions", content=chunked())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b'"text"', b"\xff\xfe"])
def test_invalid_json_is_400_openai_error(http: httpx.Client, body: bytes) -> None:
    response = http.post("/v1/chat/completions", content=body,
                         headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [
    {"messages": "hello"}, {"messages": []}, {"messages": [{"role": "wizard"}]},
    {**CHAT, "temperature": "hot"}, {**CHAT, "max_tokens": -1}, {**CHAT, "model": 5},
    {**CHAT, "stream": {"yes": 1}},
])
def test_wrong_types_are_400_naming_the_field(http: httpx.Client, body: dict[str, object]) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"]


def test_ollama_routes_answer_errors_in_ollamas_shape(http: httpx.Client) -> None:
    response = http.post("/api/chat", content=b"{oops")
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_unknown_model_is_404_listing_available(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"})
    assert response.status_code == 404
    assert "fake-model" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 300,
                                  "model\nname", "..", "C:\\models\\x.gguf", " lead"])
def test_model_names_are_validated(http: httpx.Client, name: str) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, "model": name})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_client_mistakes_never_500(http: httpx.Client) -> None:
    cases = [("GET", "/v1/chat/completions"), ("DELETE", "/v1/models"), ("POST", "/nowhere"),
             ("PUT", "/api/chat"), ("GET", "/v1/models/..%2F..%2Fetc")]
    for method, path in cases:
        assert http.request(method, path).status_code < 500, path


@pytest.mark.parametrize("origin", ["http://evil.com", None])
def test_websocket_upgrades_are_refused(url: str, origin: str | None) -> None:
    import socket

    host, port = url.split("://", 1)[1].rsplit(":", 1)
    lines = ["GET /v1/chat/completions HTTP/1.1", f"Host: {host}:{port}",
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert b" 101 " not in status_line
    assert status_line.split()[1] in {b"400", b"403", b"404", b"405"}
