"""The in-memory vector cache, kept in a file beside the index so opening is a mmap.

Reading every float32 vector back from SQLite and quantising it took ~1 s at 100k chunks
on the first query after opening. ``index.db.vectors`` holds exactly what the search
scans (ids, collection of each row, sign bits, int8 copy, scales) and is mapped, not read.

Fail closed: the header records the index's generation (a counter SQLite triggers bump on
every chunk insert, update or delete, whoever the writer is), the row count and two
CRC-32s: one of the small arrays that name rows (ids, collections, scales: 16 bytes a
row), checked before the file is used, and one of the bulk (sign bits and int8 copy:
432 bytes a row), checked in a background thread after opening (checking 45 MB first was
~40 ms of a 100k index's first query). A file whose generation or count differs from the
database, or whose checksum, size, magic or dimension is wrong, is not used: the caller
rebuilds from SQLite. Until the bulk check answers, a damaged bit or int8 value can only
change which candidates the exact float32 pass (read from SQLite) sees, never return a
row the index does not hold or one from another collection; the caller drops the file
and rebuilds when that check fails (``Loaded.check``). The file is written to a temporary
name, fsynced and renamed over the old one, so a reader sees the old file or the new one,
never half of one.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bitscan import VectorCache

MAGIC = b"LIVECS03"
# magic, dim, count, generation, names length, crc32 of names/ids/collections/scales,
# crc32 of bits and int8
_HEADER = struct.Struct("<8sIQQIII")
_META_BLOCKS = 4  # names, ids, collections, scales; then bits, int8
HEADER_BYTES = 64
_ALIGN = 64


class BulkCheck:
    """The CRC-32 of the bits and int8 blocks, computed in a thread at the lowest
    priority (zlib releases the GIL on large buffers: queries go first)."""

    def __init__(self, data: memoryview, crc: int) -> None:
        self._data, self._crc = data, crc
        self._ok: bool | None = None
        self._thread = threading.Thread(target=self._run, name="vectorfile-check",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread's own nice
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        self._ok = zlib.crc32(self._data) == self._crc
        self._data.release()

    def wait(self, timeout: float | None = None) -> bool | None:
        """True (whole), False (corrupt), or None while still checking."""
        self._thread.join(timeout)
        return self._ok

    @property
    def failed(self) -> bool:
        return self._ok is False


@dataclass(frozen=True)
class Loaded:
    cache: VectorCache | None
    why: str  # "ok", or why the file was not used
    check: BulkCheck | None = None


def path_for(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".vectors")


def map_readonly(path: Path, header_bytes: int) -> tuple[mmap.mmap | None, str]:
    """``path`` memory-mapped for reading, or None and why not (missing, a file shorter
    than its header, unreadable): the side files beside the index share these rules."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < header_bytes:
                return None, "missing" if size == 0 else "truncated"
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), "ok"
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as exc:
        return None, f"unreadable: {exc}"


def _pad(n: int) -> int:
    return -n % _ALIGN


def _blocks(cache: VectorCache) -> list[bytes]:
    names = json.dumps(list(cache.names)).encode()
    arrays = [cache.ids.astype("<i8"), cache.collections.astype("<i4"),
              cache.scales.astype("<f4"), np.ascontiguousarray(cache.codes).view(np.uint8),
              np.ascontiguousarray(cache.scaled)]
    out = [names + b"\0" * _pad(len(names))]
    for array in arrays:
        data = array.tobytes()
        out.append(data + b"\0" * _pad(len(data)))
    return out


def write(path: Path, cache: VectorCache, *, dim: int, generation: int) -> None:
    """Atomically replace ``path`` with ``cache``."""
    blocks = _blocks(cache)
    crcs = [0, 0]
    for i, block in enumerate(blocks):
        crcs[i >= _META_BLOCKS] = zlib.crc32(block, crcs[i >= _META_BLOCKS])
    names_len = len(json.dumps(list(cache.names)).encode())
    header = _HEADER.pack(MAGIC, dim, len(cache), generation, names_len, *crcs)
    write_atomic(path, [header + b"\0" * (HEADER_BYTES - len(header)), *blocks])


def write_atomic(path: Path, parts: Iterable[bytes]) -> None:
    """Replace ``path`` with ``parts`` (temp file, fsync, rename, fsync dir): a reader
    sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # a platform without directory fds (Windows): the rename is done
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path, *, dim: int, generation: int, count: int) -> Loaded:
    """The cache in ``path`` if it matches the database, else why not; the bulk is
    checked in the background (``Loaded.check``: wait on it to have it checked first)."""
    mapped, why = map_readonly(path, HEADER_BYTES)
    if mapped is None:
        return Loaded(None, why)
    size = len(mapped)
    magic, f_dim, f_count, f_gen, names_len, crc, bulk_crc = _HEADER.unpack_from(mapped, 0)
    if magic != MAGIC or f_dim != dim:
        return Loaded(None, "not a vector file of this index")
    if f_gen != generation or f_count != count:
        return Loaded(None, f"stale (generation {f_gen}, index at {generation})")
    sizes = [names_len, 8 * count, 4 * count, 4 * count, count * (dim // 8), count * dim]
    offsets, at = [], HEADER_BYTES
    for n in sizes:
        offsets.append(at)
        at += n + _pad(n)  # HEADER_BYTES is itself aligned
    if dim % 8 or at != size:
        return Loaded(None, "truncated or resized")
    if zlib.crc32(memoryview(mapped)[HEADER_BYTES:offsets[_META_BLOCKS]]) != crc:
        return Loaded(None, "checksum mismatch (corrupt)")
    try:
        names = tuple(json.loads(bytes(mapped[offsets[0]:offsets[0] + names_len])))
    except ValueError:
        return Loaded(None, "corrupt collection names")

    def view(i: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        return np.frombuffer(mapped, dtype=dtype, count=n, offset=offsets[i]).reshape(shape)

    columns = (view(4, "<u8", (dim // 64, count)) if dim % 64 == 0
               else view(4, "u1", (dim // 8, count)))
    cache = VectorCache(view(1, "<i8", (count,)), columns,
                        view(5, "i1", (count, dim)), view(3, "<f4", (count,)),
                        view(2, "<i4", (count,)), names, mapped)
    return Loaded(cache, "ok", BulkCheck(memoryview(mapped)[offsets[_META_BLOCKS]:], bulk_crc))
