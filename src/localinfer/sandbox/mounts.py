"""Which host directories a guest may be given, and how an ``rw`` one is shared.

A mount source is resolved (every symlink followed) before anything else, and refused
when it is, lies under, or contains a place the user cannot have meant to share: the
kernel's process and device trees (``/proc/<pid>/environ`` holds API keys), the
localinfer home (tokens, consent, keys) and the sandbox's cache of compiled native code.

An ``rw`` mount is never given to wasmtime as the host directory itself: WASI preopens
have no hook on writes, so a cap could only be checked after the bytes hit the host.
It is copied into the call's scratch area (where ``disk`` is enforced while the guest
writes, as for ``/work``), and what the guest changed there is copied back when it
ended by itself within its limits — regular files and directories only, written
through directory file descriptors that never follow a symlink on the host.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import LocalInferError, UsageError
from ..files import shown

Kind = Literal["file", "dir", "link"]
BLOCK = 4096  # files are counted as the disk blocks they take, as the disk cap counts them


def _home() -> Path:
    from ..settings import default_home

    return default_home()


def _sandbox_cache() -> Path:
    from .runtimes import cache_dir

    return cache_dir()


# What may never be shared, as data: (where, what it holds). Resolved at each check, since
# LOCALINFER_HOME and XDG_CACHE_HOME are read from the environment.
PROTECTED: tuple[tuple[Callable[[], Path], str], ...] = (
    (lambda: Path("/proc"), "the kernel's process files (environments, memory)"),
    (lambda: Path("/sys"), "the kernel's state"),
    (lambda: Path("/dev"), "device files"),
    (_home, "the localinfer home (tokens, consent, keys)"),
    (_sandbox_cache, "the sandbox's compiled native code"),
)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _refusal(source: Path, extra: tuple[Path, ...]) -> str | None:
    roots = [(_resolved(get()), what) for get, what in PROTECTED]
    roots += [(_resolved(p), "the sandbox's compiled native code") for p in extra]
    for root, what in roots:
        if source == root or root in source.parents:
            return f"it is {what} ({root})" if source == root else f"it is inside {root} ({what})"
        if source in root.parents:
            return f"it contains {root} ({what})"
    return None


def resolve_source(host: str | os.PathLike[str], *, protect: tuple[Path, ...] = ()) -> Path:
    """The real directory behind a mount source, or one UsageError line saying why not."""
    given = Path(host).expanduser()
    try:
        source = given.resolve(strict=True)
    except FileNotFoundError:
        raise UsageError(f"a mount must be an existing directory: {shown(given)} "
                         "does not exist") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission error
        why = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot mount {shown(given)}: {why}") from None
    refusal = _refusal(source, protect)
    if refusal is not None:
        named = shown(given) if source == given.absolute() else \
            f"{shown(given)} (which is {shown(source)})"
        raise UsageError(f"refusing to mount {named}: {refusal}")
    if not source.is_dir():
        raise UsageError(f"a mount must be an existing directory: {shown(given)}")
    return source


def differs(host: str | os.PathLike[str], source: Path) -> bool:
    """Whether the resolved source is not simply the path the user typed."""
    return Path(os.path.abspath(Path(host).expanduser())) != source


# -- rw mounts: copy in, copy back --------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    kind: Kind
    host: tuple[int, int] | str  # files: (size, mtime_ns) on the host; links: the target
    copy: tuple[int, int] | None = None  # files: (size, mtime_ns) of the scratch copy


def _kind(st: os.stat_result) -> Kind | None:
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    return None  # FIFOs, sockets, devices: not copied (a FIFO would block the copy)


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``root`` (relative POSIX path, lstat), parents first; never
    follows a symlink."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            sub = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield sub, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(sub)


def _stamp(st: os.stat_result) -> tuple[int, int]:
    return (st.st_size, st.st_mtime_ns)


@dataclass
class RwMount:
    """One ``rw`` mount: ``host`` (resolved) shared as a copy at ``copy``."""

    host: Path
    copy: Path
    seen: dict[str, _Seen] = field(default_factory=dict)

    def copy_in(self, budget: int, max_entries: int) -> int:
        """Copy the host directory into ``copy``; the bytes used. Refused (nothing
        copied) when it holds more than ``budget`` bytes or ``max_entries`` entries."""
        entries: list[tuple[str, os.stat_result, Kind]] = []
        total = 0
        try:
            for rel, st in _walk(self.host):
                kind = _kind(st)
                if kind is None:
                    continue
                entries.append((rel, st, kind))
                total += -(-st.st_size // BLOCK) * BLOCK if kind == "file" else 0
                if total > budget or len(entries) > max_entries:
                    from .core import format_size

                    limit = (f"{max_entries} entries" if len(entries) > max_entries
                             else f"the {format_size(budget)} the disk cap leaves")
                    raise UsageError(f"the rw mount {shown(self.host)} holds more than {limit};"
                                     " it is copied into the sandbox's writable space, so "
                                     "mount it :ro or raise --disk")
        except OSError as exc:
            raise UsageError(f"cannot read the rw mount {shown(self.host)}: "
                             f"{exc.strerror or exc}") from None
        self.copy.mkdir()
        for rel, st, kind in entries:
            src, dst = self.host / rel, self.copy / rel
            try:
                if kind == "dir":
                    dst.mkdir()
                    self.seen[rel] = _Seen("dir", "")
                elif kind == "link":
                    target = os.readlink(src)
                    os.symlink(target, dst)  # the guest cannot follow it out (WASI)
                    self.seen[rel] = _Seen("link", target)
                else:
                    _copy_file(src, dst, st)
                    self.seen[rel] = _Seen("file", _stamp(st), _stamp(dst.lstat()))
            except OSError as exc:
                raise UsageError(f"cannot copy {shown(src)} into the sandbox: "
                                 f"{exc.strerror or exc}") from None
        return total

    def copy_back(self) -> list[str]:
        """Apply the guest's changes to the host; the relative paths written or removed."""
        changed: list[str] = []
        now = {rel: st for rel, st in _walk(self.copy)}
        # Removals first, deepest first: what the guest deleted or replaced by another kind.
        for rel in sorted(self.seen, key=lambda r: r.count("/"), reverse=True):
            before = self.seen[rel]
            st = now.get(rel)
            kind = _kind(st) if st is not None else None
            if kind == before.kind and (kind != "link" or os.readlink(self.copy / rel)
                                        == before.host):
                continue
            if self._remove(rel, before):
                changed.append(rel)
        for rel, st in now.items():  # parents first
            kind, was = _kind(st), self.seen.get(rel)
            if kind == "dir" and (was is None or was.kind != "dir"):
                self._on_host(rel, lambda fd, name: _mkdir_at(fd, name))
                changed.append(rel)
            elif kind == "file" and (was is None or was.kind != "file"
                                     or was.copy != _stamp(st)):
                self._on_host(rel, functools.partial(_write_at, source=self.copy / rel,
                                                     st=st))
                changed.append(rel)
            # New symlinks stay in the sandbox: one the guest planted must never reach
            # the host, where a program would follow it.
        return changed

    def _remove(self, rel: str, before: _Seen) -> bool:
        def remove(fd: int, name: str) -> bool:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            unchanged = _kind(st) == before.kind and (
                before.kind == "dir"
                or (before.kind == "file" and _stamp(st) == before.host)
                or (before.kind == "link" and os.readlink(name, dir_fd=fd) == before.host))
            if not unchanged:  # changed on the host meanwhile: the host's version wins
                return False
            try:
                if before.kind == "dir":
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return False  # the host put something in it: keep it
                raise
            return True

        return bool(self._on_host(rel, remove, create_parents=False))

    def _on_host(self, rel: str, act: Callable[[int, str], object], *,
                 create_parents: bool = True) -> object:
        """Run ``act(parent_fd, name)`` for ``host/rel``, reaching the parent one directory
        at a time with O_NOFOLLOW: a symlink on the way (a host link the guest replaced
        by a directory) is never followed."""
        *parents, name = rel.split("/")
        fd = os.open(self.host, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parents:
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                  dir_fd=fd)
                except FileNotFoundError:
                    if not create_parents:
                        return None
                    _mkdir_at(fd, part)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                  dir_fd=fd)
                os.close(fd)
                fd = nxt
            return act(fd, name)
        except OSError as exc:
            raise LocalInferError(
                f"sandbox: could not copy the guest's change to {rel} back into "
                f"{shown(self.host)}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)


def _copy_file(src: Path, dst: Path, st: os.stat_result) -> None:
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout)
    os.chmod(dst, stat.S_IMODE(st.st_mode) | stat.S_IRUSR)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _mkdir_at(fd: int, name: str) -> None:
    try:
        os.mkdir(name, 0o755, dir_fd=fd)
    except FileExistsError:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise


def _write_at(fd: int, name: str, source: Path, st: os.stat_result) -> None:
    """Write ``source``'s bytes as ``name`` in the directory ``fd``: a temp file, then a
    rename over whatever is there (a symlink is replaced, never written through)."""
    tmp = f".{name}.localinfer-{os.getpid()}.tmp"
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                  stat.S_IMODE(st.st_mode) & 0o666 or 0o644, dir_fd=fd)
    try:
        with os.fdopen(out, "wb") as fout, open(
                os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fin:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        raise
