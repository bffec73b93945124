"""``/api/pull`` and ``/api/delete`` through the official ``ollama`` client, over
localinfer's model assets: the file comes from the loopback file server the pull tests
use (tests/support/file_server.py), never from the internet."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.gateway_harness import RunApp, serve_gateway
from tests.support.file_server import FileServer, Served, blob, serve

SIZE = 300_000


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    yield from serve()


def tiny_entry(url: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "license": "MIT", "description": "a test asset", "format": "bin",
            "ram": 2 * SIZE, **extra}


@pytest.fixture
def asset(file_server: FileServer) -> tuple[str, bytes]:
    data = blob(SIZE)
    return file_server.add("/tiny.bin", Served(data)), data


def gateway_with(run_app: RunApp, tmp_path: Path, **models: dict[str, Any]) -> str:
    return serve_gateway(run_app, tmp_path / "home", models=models)


@pytest.mark.compat("ollama", "/api/pull", "scripted")
@pytest.mark.compat("ollama", "/api/delete", "scripted")
def test_pull_streams_ollama_status_lines_then_delete(
        run_app: RunApp, tmp_path: Path, asset: tuple[str, bytes],
        file_server: FileServer) -> None:
    url, data = asset
    gateway = gateway_with(run_app, tmp_path, **{"tiny-local": tiny_entry(url, data)})
    client = ollama.Client(host=gateway, timeout=60)
    parts = list(client.pull("tiny-local", stream=True))
    statuses = [p.status for p in parts]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    disclosed = statuses[1] or ""
    assert disclosed.startswith("localinfer: tiny-local: 300.0 kB (fetch 300.0 kB); RAM "
                                "needs 600.0 kB, ") and disclosed.endswith(": fits")
    downloading = [p for p in parts if p.status == "downloading"]
    assert downloading and downloading[-1].completed == downloading[-1].total == SIZE
    assert downloading[0].digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert "verifying sha256 digest" in statuses
    blobs = list((tmp_path / "home" / "models" / "blobs").iterdir())
    assert [b.read_bytes() == data for b in blobs] == [True]
    # Pulled again: cached, verified, nothing fetched.
    gets = len(file_server.hits("GET", "/tiny.bin"))
    again = client.pull("tiny-local")
    assert again.status == "success" and len(file_server.hits("GET", "/tiny.bin")) == gets
    assert client.delete("tiny-local").status == "success"
    assert not list((tmp_path / "home" / "models" / "blobs").iterdir())
    with pytest.raises(ollama.ResponseError) as info:
        client.delete("tiny-local")
    assert info.value.status_code == 404 and "tiny-local" in info.value.error


@pytest.mark.compat("ollama", "/api/pull unknown model",
                    "scripted", refused="404 listing the catalog")
def test_unknown_models_and_urls_are_refused_before_any_fetch(
        run_app: RunApp, tmp_path: Path, asset: tuple[str, bytes],
        file_server: FileServer) -> None:
    url, data = asset
    gateway = gateway_with(run_app, tmp_path, **{"tiny-local": tiny_entry(url, data)})
    client = ollama.Client(host=gateway, timeout=60)
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("llama3.2:1b")
    assert info.value.status_code == 404 and "tiny-local" in info.value.error
    for target in (url, "ollama:smollm2"):
        response = httpx.post(gateway + "/api/pull", json={"model": target}, timeout=60)
        assert response.status_code == 400 and "localinfer pull" in response.json()["error"]
    assert file_server.hits("GET") == []


def test_large_download_is_refused_without_confirmation(
        run_app: RunApp, tmp_path: Path, asset: tuple[str, bytes],
        file_server: FileServer) -> None:
    url, data = asset
    gateway = serve_gateway(run_app, tmp_path / "home", download_confirm_bytes=1000,
                            models={"tiny-local": tiny_entry(url, data)})
    response = httpx.post(gateway + "/api/pull", json={"model": "tiny-local"}, timeout=60)
    assert response.status_code == 400
    assert "localinfer pull tiny-local" in response.json()["error"]
    assert file_server.hits("GET") == []


def test_a_failed_download_ends_with_an_error_line(
        run_app: RunApp, tmp_path: Path, asset: tuple[str, bytes]) -> None:
    url, data = asset
    wrong = tiny_entry(url, data, sha256="ab" * 32)
    gateway = gateway_with(run_app, tmp_path, **{"tiny-local": wrong})
    with httpx.stream("POST", gateway + "/api/pull", json={"model": "tiny-local"},
                      timeout=60) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[0] == {"status": "pulling manifest"}
    assert "sha256" in lines[-1]["error"] and all("error" not in x for x in lines[:-1])
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=gateway, timeout=60).pull("tiny-local", stream=False)
    assert info.value.status_code >= 400 and "sha256" in info.value.error
