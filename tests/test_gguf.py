"""GGUF header validation: the bundled model passes; truncated, hostile and mutated
files are refused with BadModelFile (one line naming the file), never anything else."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localinfer.assets.bundled import bundled_model_path
from localinfer.assets.gguf import GGML_TYPES, GGUFInfo, validate_gguf
from localinfer.errors import BadModelFile

# --- a tiny GGUF writer, from the format's spec (ggml docs/gguf.md) -----------------

U32, STRING, ARRAY, U64 = 4, 8, 9, 10


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_str(key: str, value: str) -> bytes:
    return gstr(key) + struct.pack("<I", STRING) + gstr(value)


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", U32, value)


def tensor_info(name: str, shape: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    dims = b"".join(struct.pack("<Q", d) for d in shape)
    return gstr(name) + struct.pack("<I", len(shape)) + dims + struct.pack("<IQ", ggml_type, offset)


def header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def pad(data: bytes, alignment: int = 32) -> bytes:
    return data + b"\0" * (-len(data) % alignment)


def valid_gguf() -> bytes:
    """Two F32 tensors (4x2 and 3), laid out as ggml expects."""
    kvs = kv_str("general.architecture", "llama") + kv_str("general.name", "tiny") + \
        kv_u32("llama.context_length", 256)
    infos = tensor_info("a.weight", (4, 2), 0, 0) + tensor_info("b.weight", (3,), 0, 32)
    body = pad(header(2, 3) + kvs + infos)
    return body + pad(b"\1" * 32) + b"\2" * 12


def write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path) -> str:
    with pytest.raises(BadModelFile) as info:
        validate_gguf(path)
    message = info.value.message
    assert "\n" not in message and str(path) in message
    return message


# --- the real model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled() -> Path:
    return bundled_model_path()


def test_bundled_model_validates(bundled: Path) -> None:
    info = validate_gguf(bundled)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.file_size == bundled.stat().st_size
    assert info.tensor_count == len(info.tensors) == 272
    # 135M parameters, as the model's name says.
    assert 130_000_000 < info.parameter_count < 140_000_000
    last = info.tensors[-1]
    assert info.data_offset + last.offset + last.nbytes <= info.file_size


def test_synthetic_model_validates(tmp_path: Path) -> None:
    info = validate_gguf(write(tmp_path, valid_gguf()))
    assert isinstance(info, GGUFInfo)
    assert (info.name, info.context_length, info.kv_count, info.parameter_count) == \
        ("tiny", 256, 3, 11)
    assert [t.shape for t in info.tensors] == [(4, 2), (3,)]


def test_truncated_copies_of_the_bundled_model_are_refused(bundled: Path,
                                                          tmp_path: Path) -> None:
    info = validate_gguf(bundled)
    size = info.file_size
    header_cuts = set(range(0, 64)) | set(range(64, info.data_offset, info.data_offset // 150))
    data_cuts = {info.data_offset, info.data_offset + 1, size // 2, size - 4096, size - 1}
    copy = tmp_path / "cut.gguf"
    shutil.copyfile(bundled, copy)
    # One copy, cut shorter and shorter: each length is a file someone might have.
    for cut in sorted(header_cuts | data_cuts, reverse=True):
        os.truncate(copy, cut)
        message = refused(copy)
        assert "truncated" in message or "too short" in message or "past the end" in message


# --- hand-crafted hostile headers ------------------------------------------------------

def _one_tensor(shape: tuple[int, ...], ggml_type: int = 0, offset: int = 0,
                data: int = 64) -> bytes:
    return pad(header(1, 0) + tensor_info("t", shape, ggml_type, offset)) + b"\0" * data


HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "too short"),
    "bad magic": (b"GGML" + valid_gguf()[4:], "bad magic"),
    "version 1": (header(0, 0, version=1), "unsupported GGUF version 1"),
    "version 4": (header(0, 0, version=4), "unsupported GGUF version 4"),
    "big endian": (header(0, 0, version=0x03000000), "big-endian"),
    "huge tensor count": (header(2**63, 0), "implausible tensor count"),
    "tensor count past eof": (header(1000, 0) + b"\0" * 100, "implausible tensor count"),
    "huge kv count": (header(0, 2**64 - 1), "implausible key-value count"),
    "huge key length": (header(0, 1) + struct.pack("<Q", 2**64 - 1) + b"\0" * 20,
                        "claims"),
    "key length past eof": (header(0, 1) + struct.pack("<Q", 1000) + b"k" * 20, "claims"),
    "huge string value": (header(0, 1) + gstr("k") + struct.pack("<IQ", STRING, 2**62)
                          + b"\0" * 16, "claims"),
    "huge array": (header(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, U32, 2**40)
                   + b"\0" * 16, "claims"),
    "string array past eof": (header(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, STRING, 5)
                              + gstr("a") + gstr("b") + struct.pack("<Q", 10**6) + b"x" * 40,
                              "claims"),
    "nested array": (header(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, ARRAY, 1)
                     + b"\0" * 32, "invalid item type"),
    "unknown value type": (header(0, 1) + gstr("k") + struct.pack("<I", 99) + b"\0" * 16,
                           "unknown value type 99"),
    "empty key": (header(0, 1) + gstr("") + struct.pack("<II", U32, 1), "empty"),
    "duplicate key": (header(0, 2) + kv_u32("k", 1) + kv_u32("k", 2), "duplicate key"),
    "alignment not power of two": (header(0, 1) + kv_u32("general.alignment", 24),
                                   "not a power of two"),
    "alignment zero": (header(0, 1) + kv_u32("general.alignment", 0), "not a power of two"),
    "alignment wrong type": (header(0, 1) + gstr("general.alignment")
                             + struct.pack("<IQ", U64, 32), "must be a uint32"),
    "tensor name too long": (pad(header(1, 0) + tensor_info("x" * 64, (4,), 0, 0)) + b"\0" * 16,
                             "tensor #0 name"),
    "too many dims": (_one_tensor((1, 1, 1, 1, 1)), "5 dimensions"),
    "negative dim": (_one_tensor((2**63, 1)), "impossible shape"),
    "element overflow": (_one_tensor((2**32, 2**32)), "impossible shape"),
    "unknown ggml type": (_one_tensor((32,), ggml_type=99), "unknown ggml type 99"),
    "removed ggml type": (_one_tensor((32,), ggml_type=4), "unknown ggml type 4"),
    "row not a block multiple": (_one_tensor((31,), ggml_type=2), "not a multiple"),
    "offset out of place": (_one_tensor((4,), offset=32), "offset 32"),
    "offset past eof": (_one_tensor((4,), offset=2**60), "offset"),
    "data past eof": (_one_tensor((32,), data=100), "past the end"),
    "huge tensor": (_one_tensor((2**40, 2**20)), "more than the whole file"),
    "duplicate tensor": (pad(header(2, 0) + tensor_info("t", (8,), 0, 0)
                             + tensor_info("t", (8,), 0, 32)) + b"\0" * 64, "duplicate tensor"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_refused(case: str, tmp_path: Path) -> None:
    data, expected = HOSTILE[case]
    assert expected in refused(write(tmp_path, data))


def test_every_known_ggml_type_sizes_a_block(tmp_path: Path) -> None:
    for ggml_type, (_name, block, type_size) in GGML_TYPES.items():
        info_bytes = tensor_info("t", (block, 2), ggml_type, 0)
        data = pad(header(1, 0) + info_bytes) + b"\0" * 2 * type_size
        info = validate_gguf(write(tmp_path, data))
        assert info.tensors[0].nbytes == 2 * type_size
        # One byte fewer of data and the same header is refused.
        assert "past the end" in refused(write(tmp_path, data[:-1]))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "not found" in refused(tmp_path / "nope.gguf")
    assert "directory" in refused(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, valid_gguf())
    path.chmod(0)
    assert "permission denied" in refused(path)


# --- mutation fuzzing ------------------------------------------------------------------

SEED = valid_gguf()


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(FUZZ, max_examples=400)
@given(edits=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)),
                      min_size=1, max_size=8),
       cut=st.integers(0, len(SEED)))
def test_mutated_headers_validate_or_are_refused(tmp_path: Path, edits: list[tuple[int, int]],
                                                 cut: int) -> None:
    data = bytearray(SEED)
    for index, value in edits:
        data[index] = value
    path = write(tmp_path, bytes(data[:cut]) if cut < len(SEED) else bytes(data))
    try:
        info = validate_gguf(path)
    except BadModelFile as exc:
        assert "\n" not in exc.message and str(path) in exc.message
    else:
        last = info.tensors[-1] if info.tensors else None
        assert last is None or info.data_offset + last.offset + last.nbytes <= info.file_size


@settings(FUZZ, max_examples=300)
@given(tail=st.binary(max_size=512))
def test_random_bodies_after_a_valid_preamble_are_refused_cleanly(tmp_path: Path,
                                                                  tail: bytes) -> None:
    path = write(tmp_path, b"GGUF" + struct.pack("<I", 3) + tail)
    try:
        validate_gguf(path)
    except BadModelFile as exc:
        assert "\n" not in exc.message
