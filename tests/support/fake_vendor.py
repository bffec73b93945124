"""A small stand-in for the browser tier's vendor/ (the pinned wllama files), for tests
of what happens when one of them is damaged or missing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from localinfer.web import vendor


def fake_vendor(root: Path) -> None:
    """A small vendor/ with every file the page imports, listed with its sha256."""
    files = []
    for relative in vendor.REQUIRED:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"// {relative}\n".encode())
        files.append({"path": relative, "bytes": path.stat().st_size,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = {"packages": [{"name": "@wllama/wllama", "version": "2.4.0", "license": "MIT",
                              "files": files}]}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture
def vendor_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "vendor"
    fake_vendor(root)
    monkeypatch.setattr(vendor, "VENDOR_ROOT", root)
    monkeypatch.setattr(vendor, "VENDOR_MANIFEST", root / "manifest.json")
    monkeypatch.setattr(vendor, "_CHECKOUT_SCRIPT", tmp_path / "absent.py")  # installed
    return root
