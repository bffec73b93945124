"""``/api/pull`` through the gateway within limits (a download nobody can confirm): a
server that does not say the size is refused after its headers, and the file is capped at
``download_confirm_bytes`` whether announced or as it arrives, as ``localinfer pull`` does
without a terminal. Before: the gateway's pull had no limits, so a catalog entry without
a size (``[models.NAME]`` in config.toml, or a name pulled before) read whatever a server
sent, to the end of the disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_harness import serve_gateway
from tests.support.pull_server import GGUF_HEAD, MB, Body, Server, server
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile

__all__ = ["server"]  # the fixture, used by name


def entry(url: str, data: bytes) -> dict[str, Any]:
    """A user catalog entry that does not say its size."""
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "format": "bin",
            "license": "MIT", "description": "no size given"}


def blobs(home: Path) -> list[Path]:
    where = home / "models" / "blobs"
    return list(where.iterdir()) if where.exists() else []


def pull(gateway: str, name: str, stream: bool) -> httpx.Response:
    return httpx.post(gateway + "/api/pull", json={"model": name, "stream": stream},
                      timeout=120, trust_env=False)


@pytest.mark.parametrize("stream", [False, True])
def test_a_pull_without_a_size_is_refused_after_the_headers(
        run_app: RunApp, tmp_path: Path, server: Server, stream: bool) -> None:
    data = GGUF_HEAD + bytes(16 * MB)
    url = server.add("/nolength.bin", Body(data, length=False, delay=0.005))
    home = tmp_path / "home"
    gateway = serve_gateway(run_app, home, models={"nolength": entry(url, data)})
    response = pull(gateway, "nolength", stream)
    if stream:
        last = json.loads(response.content.splitlines()[-1])
        assert "does not say how big" in last["error"], response.text[-500:]
    else:
        assert response.status_code == 400, response.text
        assert "does not say how big" in response.json()["error"]
    assert server.sent.get("/nolength.bin", 0) < 8 * MB  # closed after the headers
    assert blobs(home) == []


def test_a_pull_announced_above_download_confirm_bytes_is_refused_before_the_body(
        run_app: RunApp, tmp_path: Path, server: Server) -> None:
    data = GGUF_HEAD + bytes(4 * MB)
    # The HEAD the disclosure makes does not say the size (so it cannot refuse it
    # first); the GET does.
    url = server.add("/big.bin", Body(data, delay=0.005, head_length=False))
    home = tmp_path / "home"
    gateway = serve_gateway(run_app, home, models={"big": entry(url, data)},
                            download_confirm_bytes=MB)
    response = pull(gateway, "big", stream=False)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert "more than download_confirm_bytes 1.0 MB" in error, error
    assert server.sent.get("/big.bin", 0) < 3 * MB  # closed after the headers
    assert blobs(home) == []


def test_a_damaged_manifest_is_503_naming_it_and_cache_repair(
        run_app: RunApp, tmp_path: Path, server: Server) -> None:
    """Before: /api/pull answered 400 (as if the request were wrong) and /api/delete 404
    ('not found; available: none'). The listings do not read the manifest (they list what
    the backends serve) and keep answering."""
    data = GGUF_HEAD + bytes(MB)
    url = server.add("/tiny.bin", Body(data))
    home = tmp_path / "home"
    manifest = home / "models" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"models": {"tiny": {"sha256": "ab')
    gateway = serve_gateway(run_app, home, models={"tiny": {**entry(url, data),
                                                            "size": len(data)}})
    for stream in (False, True):
        response = pull(gateway, "tiny", stream)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert str(manifest) in error and "localinfer cache repair" in error, error
    deleted = httpx.request("DELETE", gateway + "/api/delete", json={"model": "tiny"},
                            timeout=30, trust_env=False)
    assert deleted.status_code == 503 and "localinfer cache repair" in deleted.text
    assert server.sent.get("/tiny.bin", 0) == 0  # nothing fetched
    assert manifest.read_text() == '{"models": {"tiny": {"sha256": "ab'  # never overwritten
    for path in ("/api/tags", "/v1/models"):
        listed = httpx.get(gateway + path, timeout=30, trust_env=False)
        assert listed.status_code == 200, (path, listed.text)
