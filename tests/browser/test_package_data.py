"""The built wheel carries the browser tier: our JS, the demo app and the vendored engine
files that scripts/build_web.py copied from node_modules (never committed to git)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from localinfer.web.assets import STATIC_ROOT, engine_files, vendor_manifest

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(vendor_manifest() is None,
                                 reason="the in-browser engine is not built (run ./dev)")]


def test_wheel_contains_sdk_demo_and_vendored_engine(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    shutil.copytree(REPO / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(tree)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("localinfer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    prefix = "localinfer/web/static/"
    ours = [p.relative_to(STATIC_ROOT).as_posix() for p in STATIC_ROOT.rglob("*")
            if p.is_file() and "vendor" not in p.parts]
    assert ours and all(prefix + name in names for name in ours), sorted(names)
    for f in engine_files():
        assert prefix + "vendor/" + f["path"] in names
    assert prefix + "vendor/manifest.json" in names
