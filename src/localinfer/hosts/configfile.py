"""Edit the ``[[hosts]]`` tables of config.toml without touching anything else in it.

The standard library reads TOML but does not write it, so the edit is textual: the
``[[hosts]]`` blocks are cut out (each runs to the next table header) and the new list
is appended. The result is parsed again and must hold exactly the old settings with
the new hosts; otherwise nothing is written. A config.toml that does not parse is
never rewritten (one SettingsError says so). Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..settings import SettingsError, read_config
from .spec import HostSpec, HostSpecError, declared_hosts

_HEADER = re.compile(r"^\s*\[")
_HOSTS_HEADER = re.compile(r"^\s*\[\[\s*hosts\s*\]\]\s*(#.*)?$")


def read_hosts(path: Path) -> list[HostSpec]:
    config = read_config(path)
    try:
        return declared_hosts(_tables(config, path), ())
    except HostSpecError as exc:
        raise SettingsError(f"{path}: {exc}; fix or remove that entry") from None


def _tables(config: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    hosts = config.get("hosts", [])
    if not isinstance(hosts, list):
        raise SettingsError(f"{path}: `hosts` must be an array of [[hosts]] tables")
    return hosts


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"cannot write {value!r} to TOML")


def render(spec: HostSpec) -> str:
    lines = ["[[hosts]]", *(f"{k} = {_value(v)}" for k, v in spec.to_toml().items())]
    return "\n".join(lines) + "\n"


def _without_hosts(text: str) -> str:
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if _HOSTS_HEADER.match(line):
            skipping = True
            continue
        if skipping and _HEADER.match(line):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


def write_hosts(path: Path, hosts: list[HostSpec]) -> None:
    """Replace the [[hosts]] tables of ``path`` with ``hosts``, or raise SettingsError
    and leave the file as it was."""
    before = read_config(path)  # SettingsError if it does not parse: never overwritten
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    body = _without_hosts(text).rstrip("\n")
    blocks = "\n".join(render(h) for h in hosts)
    new = (body + "\n\n" if body else "") + blocks
    try:
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: could not update [[hosts]] safely ({exc}); edit it by "
                            "hand") from None
    expected = {k: v for k, v in before.items() if k != "hosts"}
    got = {k: v for k, v in after.items() if k != "hosts"}
    if got != expected or after.get("hosts", []) != [h.to_toml() for h in hosts]:
        raise SettingsError(f"{path}: its layout is too unusual to update [[hosts]] safely "
                            "(nothing was written); edit it by hand")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def editing(path: Path) -> Iterator[None]:
    """Hold the config's lock for a read-modify-write (two `hosts add` at once both land)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # filelock, not fcntl: the same lock on Windows.
    with FileLock(path.with_name(path.name + ".lock"), thread_local=False):
        yield
