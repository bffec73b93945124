"""One resumable, verified HTTP download into the cache's ``partial/`` directory.

Resume rules (RFC 9110 range requests): a ``.part`` file plus a JSON sidecar holding
the URL, ETag, Last-Modified and total size. The next attempt asks for the rest with
``Range`` and ``If-Range``; a ``200`` (server ignored the range or the file changed), a
different ETag or total, or a ``Content-Range`` not starting where we stopped, all
mean: start over. The sha256 is computed while the bytes arrive; on a mismatch the
file is deleted. Nothing here writes outside ``partial/``; the caller commits.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import BadModelFile, DiskFull, DownloadError, UsageError
from ..http import (
    EgressPolicy,
    HttpClient,
    HTTPError,
    Response,
    Transport,
    make_client,
    network_class,
    parse_url,
)

if TYPE_CHECKING:
    import yarl
from ..types import Tier
from .progress import Meter, ProgressCallback, format_bytes
from .system import free_bytes

_MAX_REDIRECTS = 10
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# Headroom kept free on the disk so a download never fills it to the last byte.
DISK_MARGIN = 50_000_000


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    size: int
    transferred: int
    seconds: float
    remote: bool


def tier_for(url: yarl.URL) -> Tier:
    return "local" if network_class(url.host or "") == "loopback" else "remote"


def _write_chunk(fh: IO[bytes], data: bytes) -> None:
    # A seam for tests to simulate a full disk without filling one.
    fh.write(data)


class _Clients:
    """One guarded client per tier, so each redirect hop is checked and recorded with the
    tier of the host it actually goes to."""

    def __init__(self, policy: EgressPolicy, connect_timeout: float, read_timeout: float,
                 transport: Transport | None) -> None:
        self._policy = policy
        self._connect = connect_timeout
        self._read = read_timeout
        self._transport = transport
        self._clients: dict[Tier, HttpClient] = {}

    def for_url(self, url: yarl.URL) -> HttpClient:
        tier = tier_for(url)
        if tier not in self._clients:
            self._clients[tier] = make_client(self._policy, tier=tier, purpose="download",
                                              connect_timeout=self._connect,
                                              read_timeout=self._read,
                                              transport=self._transport,
                                              max_response_bytes=None)
        return self._clients[tier]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def open(self, method: str, url: str, headers: dict[str, str]) -> Response:
        """Send, following redirects by hand (make_client never follows them); the
        caller closes the answer (``aclose``), its body not yet read."""
        target = parse_url(url)
        for _ in range(_MAX_REDIRECTS + 1):
            client = self.for_url(target)
            try:
                response = await client.open(method, str(target), headers=headers)
            except HTTPError as exc:
                host = f"{target.scheme}://{target.host}"
                why = "cannot connect" if exc.kind == "connect" else exc.wire_name
                raise DownloadError(f"{host}: {why} ({str(exc)[:120] or 'no detail'})"
                                    ) from None
            if response.is_redirect:
                await response.aclose()
                target = target.join(parse_url(response.headers["location"]))
                if target.scheme not in ("http", "https"):
                    raise DownloadError(f"refusing redirect to {target.scheme}: URL")
                continue
            return response
        raise DownloadError(f"too many redirects fetching {url}")


async def probe_size(url: str, policy: EgressPolicy, *, connect_timeout: float = 3.0,
                     transport: Transport | None = None) -> int | None:
    """``HEAD`` the URL (no body moves) to learn its size for a disclosure."""
    clients = _Clients(policy, connect_timeout, connect_timeout * 3, transport)
    try:
        response = await clients.open("HEAD", url, {"accept-encoding": "identity"})
        await response.aclose()
        if response.status_code != 200:
            return None
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None
    finally:
        await clients.aclose()


def _load_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _validator(response: Response) -> dict[str, Any]:
    etag = response.headers.get("etag")
    return {"etag": etag, "last_modified": response.headers.get("last-modified")}


def _total_from(response: Response) -> int | None:
    if response.status_code == 206:
        m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if m and m.group(3) != "*":
            return int(m.group(3))
        return None
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


async def download(
    url: str,
    part: Path,
    *,
    policy: EgressPolicy,
    expected_sha256: str | None,
    expected_size: int | None,
    progress: ProgressCallback | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 60.0,
    transport: Transport | None = None,
    label: str | None = None,
    max_bytes: int | None = None,
    magic: bytes | None = None,
    refuse_unknown_size: bool = False,
    cap_name: str = "--max-size",
    unknown_size_fix: str = "pass --yes and --max-size SIZE, the most you will accept",
) -> Fetched:
    """Fetch ``url`` into ``part`` (resuming it if possible) and return it verified.

    ``max_bytes``: a file larger than this (announced, or as it arrives) is abandoned and
    deleted. ``magic``: the bytes the file must start with (b"GGUF"), checked as soon as
    they arrive, not after the whole download. ``refuse_unknown_size``: a response that
    does not say its size is refused before its body is read (UsageError).
    ``cap_name`` and ``unknown_size_fix``: how the messages name the cap and the way out
    (the CLI's flags by default)."""
    sidecar = part.with_suffix(".json")
    part.parent.mkdir(parents=True, exist_ok=True)
    clients = _Clients(policy, connect_timeout, read_timeout, transport)
    started = time.monotonic()
    try:
        for _attempt in range(3):
            state = _load_sidecar(sidecar)
            offset = part.stat().st_size if part.exists() else 0
            if offset and (state.get("url") != url or not _starts_with(part, magic)):
                _discard(part, sidecar)
                offset, state = 0, {}
            headers = {"accept-encoding": "identity"}
            if offset:
                headers["range"] = f"bytes={offset}-"
                etag = state.get("etag")
                # If-Range needs a strong validator; weak ETags would always fail it.
                if etag and not str(etag).startswith("W/"):
                    headers["if-range"] = str(etag)
                elif state.get("last_modified"):
                    headers["if-range"] = str(state["last_modified"])
            response = await clients.open("GET", url, headers)
            total: int | None = None
            try:
                status = response.status_code
                if status == 416 and offset and state.get("total") == offset:
                    total = offset  # the part is already complete
                elif status == 206 and offset:
                    m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                    new = _validator(response)
                    total = _total_from(response)
                    changed = (
                        m is None or int(m.group(1)) != offset
                        or (state.get("etag") and new["etag"] and new["etag"] != state["etag"])
                        or (state.get("total") and total and total != state["total"])
                    )
                    if changed:
                        _discard(part, sidecar)
                        continue
                elif status == 200:
                    if offset:  # Range ignored or the file changed: start over
                        _discard(part, sidecar)
                        offset = 0
                    total = _total_from(response)
                elif status == 416:
                    _discard(part, sidecar)
                    continue
                else:
                    await response.aread()
                    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
                    raise DownloadError(f"{url} answered HTTP {status}{reason}")
                if expected_size is not None and total is not None and total != expected_size:
                    raise DownloadError(f"{url} offers {total} bytes but {expected_size} were "
                                        "expected: wrong file or it changed upstream")
                if total is None and refuse_unknown_size and status != 416:
                    raise UsageError(f"the server does not say how big {label or url} is: "
                                     "refused without a size cap and a confirmation "
                                     f"({unknown_size_fix})")
                if max_bytes is not None and total is not None and total > max_bytes:
                    raise DownloadError(f"{label or url} is {format_bytes(total)}, more than "
                                        f"{cap_name} {format_bytes(max_bytes)}; not downloaded")
                remaining = (total - offset) if total is not None else 0
                free = free_bytes(part.parent)
                if remaining and remaining + DISK_MARGIN > free:
                    raise DiskFull(f"not enough disk space for {label or url}: needs "
                                   f"{format_bytes(remaining)}, {format_bytes(free)} free "
                                   f"in {part.parent}")
                if status != 416:
                    sidecar.write_text(json.dumps({"url": url, "total": total, "name": label,
                                                   **_validator(response)}), encoding="utf-8")
                digest = hashlib.sha256()
                if offset:
                    with open(part, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            digest.update(chunk)
                meter = Meter("download", total, progress, start=offset, detail=label)
                meter.emit()
                if status != 416:
                    await _stream_body(response, part, digest, meter, total, label or url,
                                       _Checks(max_bytes, magic if not offset else None,
                                               cap_name=cap_name))
                meter.finish()
            finally:
                await response.aclose()
            size = part.stat().st_size
            if total is not None and size != total:
                raise DownloadError(f"download of {label or url} stopped at {format_bytes(size)} "
                                    f"of {format_bytes(total)}; run it again to resume")
            actual = digest.hexdigest()
            if expected_sha256 and actual != expected_sha256:
                _discard(part, sidecar)
                raise BadModelFile(f"sha256 mismatch for {label or url}: expected "
                                   f"{expected_sha256}, got {actual}; the download was deleted")
            sidecar.unlink(missing_ok=True)
            return Fetched(part, actual, size, meter.transferred,
                           time.monotonic() - started,
                           remote=tier_for(parse_url(url)) == "remote")
        raise DownloadError(f"{url} kept changing while downloading; try again later")
    finally:
        await clients.aclose()


def _starts_with(part: Path, magic: bytes | None) -> bool:
    """Whether a partial file already holding the head starts with ``magic``."""
    if magic is None:
        return True
    with open(part, "rb") as fh:
        head = fh.read(len(magic))
    return len(head) < len(magic) or head == magic


@dataclass
class _Checks:
    """What is checked while bytes arrive: the size cap and the file's first bytes."""

    max_bytes: int | None
    magic: bytes | None
    head: bytes = b""
    cap_name: str = "--max-size"

    def check(self, chunk: bytes, have: int, label: str) -> None:
        """``have``: bytes in the part file once ``chunk`` is written."""
        if self.max_bytes is not None and have > self.max_bytes:
            raise DownloadError(f"{label} is larger than {self.cap_name} "
                                f"{format_bytes(self.max_bytes)}; stopped and deleted")
        if self.magic is not None and len(self.head) < len(self.magic):
            self.head += chunk[:len(self.magic) - len(self.head)]
            if not self.magic.startswith(self.head[:len(self.magic)]):
                raise BadModelFile(f"{label} is not a {self.magic.decode()} file: it starts "
                                   f"with {self.head!r}, not {self.magic!r}; stopped and "
                                   "deleted")


async def _stream_body(response: Response, part: Path, digest: Any, meter: Meter,
                       total: int | None, label: str, checks: _Checks) -> None:
    with open(part, "ab") as fh:
        have = fh.tell()
        try:
            async for chunk in response.aiter_bytes():
                have += len(chunk)
                try:
                    checks.check(chunk, have, label)
                except (DownloadError, BadModelFile):
                    fh.close()  # nothing of it is worth resuming
                    _discard(part, part.with_suffix(".json"))
                    raise
                try:
                    _write_chunk(fh, chunk)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        fh.close()
                        _discard(part, part.with_suffix(".json"))
                        raise DiskFull(f"disk full while writing {label} into {part.parent}; "
                                       "free some space and pull again") from None
                    raise
                digest.update(chunk)
                meter.advance(len(chunk))
        except HTTPError as exc:
            fh.flush()
            os.fsync(fh.fileno())
            done = f"{format_bytes(meter.done)} of {format_bytes(total)}"
            raise DownloadError(f"download of {label} interrupted after {done} "
                                f"({exc.wire_name}); run the same command again to resume"
                                ) from None
        fh.flush()
        os.fsync(fh.fileno())
