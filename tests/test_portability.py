"""Every module of localinfer imports where POSIX-only modules do not exist (Windows).

A subprocess marks ``fcntl``, ``termios``, ``resource`` and their kin unavailable
(``sys.modules[name] = None`` makes ``import name`` raise ImportError, as on Windows),
then imports each module of the package in turn. A module that needs one of them must
take it behind a platform check (or use a portable library such as ``filelock``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
POSIX_ONLY = ("fcntl", "termios", "resource", "pwd", "grp", "pty", "tty")
# The lead is replacing the embedded engine (issue 22); its modules are reported, not failed.
IN_REWRITE = ("localinfer.backends.embedded",)

IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None  # `import name` now raises ImportError, as on Windows
import localinfer
failed = {}
names = sorted(m.name for m in pkgutil.walk_packages(localinfer.__path__, "localinfer."))
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported
        failed[name] = traceback.format_exception_only(exc)[-1].strip()
print(json.dumps({"modules": names, "failed": failed}))
"""


def import_everything(src: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(POSIX_ONLY)],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_every_module_imports_without_posix_only_modules() -> None:
    result = import_everything(SRC)
    modules = result["modules"]
    assert isinstance(modules, list) and "localinfer.assets.cache" in modules
    failed = result["failed"]
    assert isinstance(failed, dict)
    blocking = {name: why for name, why in failed.items()
                if not name.startswith(IN_REWRITE)}
    assert blocking == {}, "\n".join(f"{n}: {w}" for n, w in blocking.items())


EXTRAS_MODULES = ("numpy", "onnxruntime", "onnx", "tokenizers", "sqlite_vec", "sqlean", "pypdf",
                  "wasmtime", "mcp")


def test_the_gateway_and_cli_work_without_the_extras() -> None:
    """`pip install localinfer` without `[rag,sandbox,mcp]`: `localinfer serve` builds its
    app (the /ui/ routes describe the embedding model without numpy)."""
    code = ("import sys\n"
            f"for name in {EXTRAS_MODULES!r}: sys.modules[name] = None\n"
            "from localinfer import AsyncClient, Settings\n"
            "from localinfer.cli.main import main\n"
            "from localinfer.gateway import create_app\n"
            "s = Settings(scan_default_ports=False)\n"
            "create_app(s, AsyncClient(s), close_client=True)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
