"""Every way of building localinfer gives the complete package: the browser tier's pinned
files (src/localinfer/web/static/vendor/, filled by setup.py through
scripts/build_web.py) in the sdist and the wheel, each with the sha256 build_web.py pins.

The slow tests build from a clean `git clone` of this repository (so only committed
files count) and reach the configured package index (pip: `build`, setuptools, the
runtime dependencies) and npm's cache (`npm ci --prefer-offline`). The fast ones check
the failure lines: no npm, a damaged file at build time and at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from localinfer import __version__
from localinfer.settings import Settings
from localinfer.web import vendor
from localinfer.web.assets import ui_manifest
from tests.support.fake_vendor import vendor_dir

REPO = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 1800  # npm ci, two isolated builds and an install on 2 loaded cores
VENDOR_IN_PACKAGE = "localinfer/web/static/vendor/"

__all__ = ["vendor_dir"]  # the fixture, used by name


def build_web_module(path: Path = REPO / "scripts" / "build_web.py") -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_web_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned() -> dict[str, str]:
    pins: dict[str, str] = build_web_module().pins()
    assert pins and vendor.REQUIRED and set(vendor.REQUIRED) <= set(pins)
    return pins


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def clean_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], tmp_path)
    assert not (clone / "src/localinfer/web/static/vendor").exists()  # git-ignored
    return clone


def venv(path: Path, *packages: str) -> Path:
    """A fresh venv (no site-packages of ours) with `packages` from the package index."""
    run([sys.executable, "-m", "venv", str(path)], path.parent)
    python = path / "bin" / "python"
    if packages:
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *packages], path.parent)
    return python


def assert_pinned_files(names: set[str], read: Callable[[str], bytes], prefix: str) -> None:
    for target, digest in pinned().items():
        name = prefix + VENDOR_IN_PACKAGE + target
        assert name in names, f"{name} missing"
        assert hashlib.sha256(read(name)).hexdigest() == digest, name
    manifest = json.loads(read(prefix + VENDOR_IN_PACKAGE + "manifest.json"))
    listed = {f["path"]: f["sha256"] for p in manifest["packages"] for f in p["files"]}
    assert listed == pinned()


@pytest.mark.slow
@pytest.mark.integration
def test_clean_clone_gives_complete_sdist_and_wheel_that_install(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    tools = venv(tmp_path / "tools", "build")
    dist = tmp_path / "dist"
    run([str(tools), "-m", "build", "--sdist", "--outdir", str(dist), str(clone)], tmp_path)
    [sdist] = dist.glob("localinfer-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name for m in tar.getmembers() if m.isfile()}
        prefix = f"{sdist.name.removesuffix('.tar.gz')}/src/"

        def read_tar(name: str) -> bytes:
            handle = tar.extractfile(name)
            assert handle is not None
            return handle.read()

        assert_pinned_files(members, read_tar, prefix)
        tar.extractall(tmp_path / "unpacked", filter="data")
    # The wheel from the sdist, with no npm on PATH: the sdist must carry the files.
    [unpacked] = (tmp_path / "unpacked").iterdir()
    no_npm = {**os.environ, "PATH": str(tools.parent)}
    run([str(tools), "-m", "build", "--wheel", "--outdir", str(dist), str(unpacked)],
        tmp_path, env=no_npm)
    [wheel] = dist.glob("localinfer-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert_pinned_files(set(zf.namelist()), zf.read, "")

    python = venv(tmp_path / "fresh", str(wheel))
    localinfer = python.parent / "localinfer"
    shown = run([str(localinfer), "--version"], tmp_path)
    assert shown.stdout.strip() == f"localinfer {__version__}"
    checked = run([str(python), "-c", "from localinfer.web.vendor import vendor_problem; "
                   "print(vendor_problem())"], tmp_path)
    assert checked.stdout.strip() == "None"


@pytest.mark.slow
@pytest.mark.integration
def test_pip_install_from_a_git_url_carries_the_vendor_files(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(tmp_path / "dist"),
         f"git+file://{clone}"], tmp_path)
    [wheel] = (tmp_path / "dist").glob("localinfer-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert_pinned_files(set(zf.namelist()), zf.read, "")


def tree_with_build_web(tmp_path: Path) -> Path:
    """A repository-shaped tree with build_web.py and the lock, and no vendor files."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "build_web.py", tree / "scripts" / "build_web.py")
    shutil.copy(REPO / "package-lock.json", tree / "package-lock.json")
    return tree


def test_build_without_npm_or_files_stops_with_one_line(tmp_path: Path) -> None:
    tree = tree_with_build_web(tmp_path)
    bare = tmp_path / "bin"  # PATH with python and nothing else: no npm
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    done = subprocess.run([str(bare / "python"), "scripts/build_web.py", "--ensure"],
                          cwd=tree, env={"PATH": str(bare)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "src/localinfer/web/static/vendor/" in line and "npm is not installed" in line
    assert not (tree / "src").exists()


def test_check_names_a_damaged_vendor_file(tmp_path: Path) -> None:
    tree = tree_with_build_web(tmp_path)
    built = tree / "src/localinfer/web/static/vendor"
    shutil.copytree(vendor.VENDOR_ROOT, built)
    check = [sys.executable, "scripts/build_web.py", "--check"]
    if subprocess.run(check, cwd=tree, capture_output=True, timeout=120).returncode != 0:
        pytest.skip("this checkout's vendor/ is not built from the pins: run ./dev")
    (built / "wllama/index.js").write_bytes(b"export {};\n")
    done = subprocess.run(check, cwd=tree, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "wllama/index.js does not have its pinned sha256" in line


def test_a_damaged_file_at_run_time_is_one_line_in_the_page_and_serve_log(
        vendor_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(embedded=False, scan_default_ports=False)
    assert vendor.vendor_problem() is None
    assert ui_manifest(settings, models={})["engine"]["built"] is True

    wasm = vendor_dir / "wllama/single-thread/wllama.wasm"
    wasm.write_bytes(wasm.read_bytes()[:-1] + b"!")  # same size, other bytes
    problem = vendor.vendor_problem()
    assert problem is not None
    assert "vendor/wllama/single-thread/wllama.wasm is damaged" in problem
    assert problem.endswith(vendor.REINSTALL_HINT)
    engine = ui_manifest(settings, models={})["engine"]
    assert engine["built"] is False and engine["problem"] == problem  # app.js shows it

    from localinfer.cli.main import main
    from localinfer.gateway import server

    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: None)  # announce only
    assert main(["serve", "--port", "0"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "/ui/" in ln]
    assert lines == [f"warning: /ui/ has no in-browser tier: {problem}"]

    wasm.unlink()
    assert "vendor/wllama/single-thread/wllama.wasm is missing" in str(vendor.vendor_problem())
