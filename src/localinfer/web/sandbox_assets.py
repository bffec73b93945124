"""The browser sandbox's runtime files: the ``.wasm`` guests the Python sandbox pins
(``localinfer.sandbox.runtimes``), found in their pip-installed packages, verified, and
named ``sandbox/<runtime>-<sha256>.wasm`` for the gateway and for ``web export``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SandboxUnavailable
from ..sandbox.runtimes import RUNTIMES, Runtime, verified_path


def runtime_filename(runtime: Runtime) -> str:
    """The file name a page asks for under ``sandbox/``: the digest in the name makes it
    safe to cache forever."""
    return f"{runtime.name}-{runtime.sha256}.wasm"


@dataclass
class SandboxExport:
    copied: list[str] = field(default_factory=list)  # runtime names
    missing: list[str] = field(default_factory=list)  # one line each: why not
    files: int = 0
    bytes: int = 0


def export_runtimes(dest: Path) -> SandboxExport:
    """Copy every installed, verified runtime into ``dest/sandbox/``; a runtime that is not
    installed (no ``sandbox`` extra) or fails its sha256 is listed in ``missing``."""
    report = SandboxExport()
    for runtime in RUNTIMES.values():
        try:
            path = verified_path(runtime)
        except SandboxUnavailable as exc:
            report.missing.append(str(exc))
            continue
        target = dest / "sandbox" / runtime_filename(runtime)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        report.copied.append(runtime.name)
        report.files += 1
        report.bytes += runtime.size
    return report
