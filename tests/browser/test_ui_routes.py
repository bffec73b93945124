"""The gateway's /ui/ routes on the wire (no browser): the manifest, model files with
HEAD/Range/ETag, the security headers, the path and Host rules, and `web export`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from localinfer.assets.bundled import bundled_model_path
from localinfer.cli.main import main as cli_main
from localinfer.web.assets import STATIC_ROOT, vendor_manifest
from tests.gateway_harness import RunApp, gateway_app

MODEL = "smollm2-135m-instruct"
LICENCES = {"@wllama/wllama": "MIT", "@huggingface/transformers": "Apache-2.0",
            "onnxruntime-web": "MIT"}

pytestmark = pytest.mark.skipif(vendor_manifest() is None,
                                reason="the in-browser engine is not built (run ./dev)")


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path) -> str:
    return run_app(gateway_app(tmp_path / "home", [], embedded=False,
                               servers=["http://127.0.0.1:11434"]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_engine_files_and_the_bundled_model(gateway: str) -> None:
    manifest = httpx.get(f"{gateway}/ui/manifest.json").json()
    engine = manifest["engine"]
    assert engine["name"] == "wllama" and engine["version"] == "2.4.0" and engine["built"]
    for f in engine["files"]:
        path = STATIC_ROOT / "vendor" / f["path"]
        assert (f["bytes"], f["sha256"]) == (path.stat().st_size, sha256(path))
        # Each vendored package keeps its own licence (wllama MIT, transformers.js Apache-2.0).
        assert f["license"] == LICENCES.get(f["package"], f["license"])
    [model] = [m for m in manifest["models"] if m["name"] == MODEL]
    gguf = bundled_model_path()
    assert (model["bytes"], model["sha256"]) == (gguf.stat().st_size, sha256(gguf))
    assert model["url"] == f"models/{MODEL}"


def test_model_file_head_range_and_etag(gateway: str) -> None:
    gguf = bundled_model_path()
    size, digest = gguf.stat().st_size, sha256(gguf)
    url = f"{gateway}/ui/models/{MODEL}"
    head = httpx.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == size
    assert head.headers["etag"] == f'"{digest}"' and head.headers["accept-ranges"] == "bytes"
    assert head.content == b""
    part = httpx.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"GGUF"
    assert part.headers["content-range"] == f"bytes 0-3/{size}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == gguf.read_bytes()[-10:]
    assert httpx.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
    stale = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == size
    assert httpx.get(url, headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    assert httpx.get(f"{gateway}/ui/models/no-such-model").status_code == 404


def test_security_headers_on_every_ui_answer(gateway: str) -> None:
    for path in ("/ui/", "/ui/localinfer.js", "/ui/engine-worker.js", "/ui/manifest.json",
                 "/ui/vendor/wllama/single-thread/wllama.wasm"):
        r = httpx.get(gateway + path)
        assert r.status_code == 200, path
        assert r.headers["cross-origin-opener-policy"] == "same-origin"
        assert r.headers["cross-origin-embedder-policy"] == "require-corp"
        assert r.headers["cross-origin-resource-policy"] == "same-origin"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self' 'wasm-unsafe-eval';" in csp
        assert "worker-src 'self' blob:;" in csp
        # Own origin, blob: (engine files handed to wllama) and the configured server only.
        assert "connect-src 'self' blob: http://127.0.0.1:11434;" in csp
        assert "default-src 'none'" in csp
        assert "http:" not in csp.replace("http://127.0.0.1:11434", "")
    js = httpx.get(f"{gateway}/ui/app.js")
    assert js.headers["content-type"].startswith("text/javascript")
    revalidated = httpx.get(f"{gateway}/ui/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert httpx.get(f"{gateway}/ui/vendor/wllama/single-thread/wllama.wasm"
                     ).headers["content-type"] == "application/wasm"


def test_only_static_files_are_served(gateway: str) -> None:
    for path in ("/ui/../settings.py", "/ui/%2e%2e/assets.py", "/ui/.hidden",
                 "/ui/lib/../../assets.py", "/ui/nothing.js"):
        assert httpx.get(gateway + path).status_code == 404, path
    # The redirect to the app, and the gateway's own rules still apply here.
    assert httpx.get(f"{gateway}/ui").headers["location"] == "/ui/"
    assert httpx.get(f"{gateway}/ui/", headers={"Host": "evil.example"}).status_code == 403
    assert httpx.get(f"{gateway}/ui/", headers={"Origin": "http://evil.example"}
                     ).status_code == 403


def test_web_export_writes_the_app_with_its_manifest(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALINFER_HOME", str(tmp_path / "home"))
    dest = tmp_path / "site"
    assert cli_main(["web", "export", str(dest)]) == 0
    for name in ("index.html", "app.js", "localinfer.js", "engine-worker.js", "lib/engine.js",
                 "vendor/wllama/index.js", "vendor/wllama/single-thread/wllama.wasm",
                 "vendor/wllama/LICENCE", "vendor/manifest.json"):
        assert (dest / name).is_file(), name
    manifest = json.loads((dest / "manifest.json").read_text())
    [model] = manifest["models"]
    assert sha256(dest / model["url"]) == model["sha256"]
    assert not list(dest.rglob("*.py"))
    # A non-empty directory is refused without --force; --no-models leaves models out.
    assert cli_main(["web", "export", str(dest)]) == 2
    bare = tmp_path / "bare"
    assert cli_main(["web", "export", str(bare), "--no-models"]) == 0
    assert json.loads((bare / "manifest.json").read_text())["models"] == []
    assert not (bare / "models").exists()
