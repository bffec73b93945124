"""``/ui/embeddings/`` on the wire (no browser): the embedding model folder the page's
transformers.js loads, with sha256s the page verifies; files outside the manifest are
404s with OpenAI-style error JSON; `web export` writes the same folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from localinfer.assets import resolve
from localinfer.backends.onnx.embedder import MODEL_ASSET
from localinfer.settings import Settings
from localinfer.web.assets import vendor_manifest
from localinfer.web.export import export_site
from tests.gateway_harness import RunApp, gateway_app

pytestmark = pytest.mark.skipif(vendor_manifest() is None,
                                reason="the in-browser engine is not built (run ./dev)")

FILES = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
         "onnx/model.onnx"}


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path) -> str:
    return run_app(gateway_app(tmp_path / "home", [], embedded=False))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_manifest_lists_the_model_folder_with_sizes_and_hashes(gateway: str,
                                                                tmp_path: Path) -> None:
    r = httpx.get(f"{gateway}/ui/embeddings/manifest.json")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    assert "content-security-policy" in r.headers
    [model] = r.json()["models"]
    assert (model["id"], model["dim"], model["base"]) == ("all-minilm-l6-v2", 384,
                                                          "all-minilm-l6-v2/")
    assert {f["path"] for f in model["files"]} == FILES
    assert model["bytes"] == sum(f["bytes"] for f in model["files"])
    onnx = resolve(MODEL_ASSET, Settings(home=tmp_path / "h2"), allow_download=False)
    [entry] = [f for f in model["files"] if f["path"] == "onnx/model.onnx"]
    # The very file the Python embedder runs, not a copy of another model.
    assert (entry["bytes"], entry["sha256"]) == (onnx.stat().st_size,
                                                sha256(onnx.read_bytes()))


def test_each_file_is_served_with_its_sha256_as_etag(gateway: str) -> None:
    [model] = httpx.get(f"{gateway}/ui/embeddings/manifest.json").json()["models"]
    for f in model["files"]:
        url = f"{gateway}/ui/embeddings/{model['id']}/{f['path']}"
        r = httpx.get(url)
        assert r.status_code == 200, url
        assert sha256(r.content) == f["sha256"] and len(r.content) == f["bytes"]
        assert r.headers["etag"] == f'"{f["sha256"]}"'
        assert r.headers["cross-origin-resource-policy"] == "same-origin"
        head = httpx.head(url)
        assert head.status_code == 200 and int(head.headers["content-length"]) == f["bytes"]
        again = httpx.get(url, headers={"If-None-Match": f'"{f["sha256"]}"'})
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", [
    "all-minilm-l6-v2/onnx/model_quantized.onnx",  # not in the manifest
    "all-minilm-l6-v2/../../settings.py",
    "other-model/config.json",
    "all-minilm-l6-v2/NOTICE.md",  # in the package folder, not in the manifest
])
def test_files_outside_the_manifest_are_404_with_error_json(gateway: str, path: str) -> None:
    r = httpx.get(f"{gateway}/ui/embeddings/{path}")
    assert r.status_code == 404
    error = r.json()["error"]
    # (httpx resolves the ../ itself: that request reaches the static route, also a 404)
    assert error["type"] == "not_found" and error["code"] == "not_found"


def test_web_export_writes_the_model_folder(tmp_path: Path) -> None:
    dest = tmp_path / "site"
    export_site(dest, Settings(home=tmp_path / "home", scan_default_ports=False))
    [model] = json.loads((dest / "embeddings" / "manifest.json").read_text())["models"]
    for f in model["files"]:
        data = (dest / "embeddings" / model["base"] / f["path"]).read_bytes()
        assert sha256(data) == f["sha256"], f["path"]
    for name in ("embeddings-worker.js", "lib/embeddings.js", "lib/documents/index.js",
                 "vendor/transformers/transformers.min.js",
                 "vendor/transformers/ort-wasm-simd-threaded.wasm",
                 "vendor/transformers/ort-wasm-simd-threaded.mjs"):
        assert (dest / name).is_file(), name
    bare = tmp_path / "bare"
    export_site(bare, Settings(home=tmp_path / "home", scan_default_ports=False),
                include_models=False)
    assert json.loads((bare / "embeddings" / "manifest.json").read_text()) == {"models": []}
