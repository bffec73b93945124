"""Sandbox argument checks that need no WebAssembly runtime."""

from __future__ import annotations

import pytest

from localinfer.errors import UsageError
from localinfer.sandbox import Sandbox, format_size, parse_size
from localinfer.sandbox.core import _check_mount, _check_name


def test_parse_size() -> None:
    assert parse_size("256M") == 256 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("512KiB") == 512 << 10
    assert parse_size("1.5g") == 3 << 29
    assert parse_size(4096) == 4096
    for bad in ("", "lots", "-1M", "0"):
        with pytest.raises(UsageError):
            parse_size(bad)
    assert format_size(256 << 20) == "256M"


def test_file_names_stay_inside_work() -> None:
    assert _check_name("a.csv").as_posix() == "a.csv"
    assert _check_name("/work/sub/b.txt").as_posix() == "sub/b.txt"
    for bad in ("../x", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(UsageError):
            _check_name(bad)


def test_mount_points() -> None:
    assert _check_mount("/data/") == "/data"
    for bad in ("/", "/work", "data", "/a/../b", "."):
        with pytest.raises(UsageError):
            _check_mount(bad)


def test_bad_arguments_are_usage_errors(tmp_path: object) -> None:
    with Sandbox(warm=0) as sb:
        with pytest.raises(UsageError):
            sb.run("1", timeout=0)
        with pytest.raises(UsageError):
            sb.run("1", mounts={"/data": ("/definitely/not/here", "ro")})
        with pytest.raises(UsageError):
            sb.run("1", mounts={"/data": (str(tmp_path), "rwx")})  # type: ignore[dict-item]
        with pytest.raises(UsageError):
            sb.run([])
        with pytest.raises(UsageError):
            sb.run("1", env={"A=B": "c"})
        with pytest.raises(UsageError):
            sb.run("1", files={"../escape.txt": b"x"})
