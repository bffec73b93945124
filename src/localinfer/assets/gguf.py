"""Check a GGUF file's header before llama.cpp sees it.

Model files are untrusted input: llama.cpp's GGUF parser has had heap overflows on
hostile headers. ``validate_gguf`` walks the header in a streaming read (never the
whole file) and refuses, with one line naming the file and the problem, anything
llama.cpp would have to trust: the magic, the version, the counts, every string and
array length, every tensor's shape, type and data range, and the alignment. The rules
mirror ggml's own loader (``gguf.cpp``, ``ggml.h`` of the vendored llama.cpp), made
stricter where it only checks late, so a file that passes here is one llama.cpp can
parse without reading past the end of anything.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from ..errors import BadModelFile
from ..files import problem, shown

MAGIC: Final = b"GGUF"
SUPPORTED_VERSIONS: Final = (2, 3)
DEFAULT_ALIGNMENT: Final = 32

# Sane bounds. Real models have a few thousand tensors and a few dozen keys; these are
# far above that and far below what would make a loop or an allocation dangerous.
MAX_TENSORS: Final = 1 << 16
MAX_KV: Final = 1 << 16
MAX_KEY_BYTES: Final = 1 << 16
MAX_STRING_BYTES: Final = 1 << 30  # ggml's GGUF_MAX_STRING_LENGTH
MAX_ARRAY_ITEMS: Final = 1 << 30  # ggml's GGUF_MAX_ARRAY_ELEMENTS
MAX_TENSOR_NAME: Final = 63  # ggml's GGML_MAX_NAME is 64 including the NUL
MAX_DIMS: Final = 4  # GGML_MAX_DIMS
MAX_ALIGNMENT: Final = 1 << 20
INT64_MAX: Final = (1 << 63) - 1
# Strings kept in GGUFInfo.metadata; longer ones (vocabularies, licences) are skipped,
# except the chat template, which tells whether the model can be offered tools.
_KEEP_STRING_BYTES: Final = 1024
_KEEP_LONG: Final = {"tokenizer.chat_template": 1 << 20}
_CHUNK: Final = 1 << 20
_U64: Final = struct.Struct("<Q")

# GGUF metadata value types -> fixed byte width (None: variable, handled separately).
_STRING, _ARRAY = 8, 9
_SCALARS: Final[dict[int, tuple[str, int]]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}

# ggml tensor types -> (name, elements per block, bytes per block), from ggml.h's
# enum and the block structs in ggml-common.h of llama.cpp as vendored by
# llama-cpp-python 0.3.36. Removed types (4, 5, 31-33, 36-38) are absent on purpose.
GGML_TYPES: Final[dict[int, tuple[str, int, int]]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}

Scalar = int | float | bool | str


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_name: str
    offset: int  # relative to the start of the data section
    nbytes: int


@dataclass(frozen=True)
class GGUFInfo:
    """What the header says, once it has been checked."""

    path: Path
    version: int
    tensor_count: int
    kv_count: int
    file_size: int
    alignment: int
    data_offset: int  # absolute offset of the tensor data section
    parameter_count: int
    architecture: str | None = None
    name: str | None = None
    context_length: int | None = None
    # Scalar metadata and short strings (arrays and long strings are left out).
    metadata: dict[str, Scalar] = field(default_factory=dict, repr=False)
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False)


class _Bad(Exception):
    """A problem in the file; becomes BadModelFile with the path in front."""


class _Reader:
    """Sequential little-endian reads over a file through a bounded window.

    Every read is checked against the file's length first, so a length field in the
    file can never make us allocate or seek past the end.
    """

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self.size = size
        self._buf = b""
        self._pos = 0  # position in _buf
        self._base = 0  # file offset of _buf[0]

    @property
    def tell(self) -> int:
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        return self.size - self.tell

    def _need(self, n: int, what: str) -> None:
        if n > self.remaining:
            raise _Bad(f"truncated: {what} needs {n} bytes at offset {self.tell}, "
                       f"only {self.remaining} left")
        have = len(self._buf) - self._pos
        if have >= n:
            return
        parts = [self._buf[self._pos:]]
        want = max(n - have, _CHUNK)
        while have < n:
            data = self._f.read(want)
            if not data:  # the file shrank while we read it
                raise _Bad(f"truncated: file ended at offset {self.tell + have}")
            parts.append(data)
            have += len(data)
            want -= len(data)
        self._base += self._pos
        self._buf = b"".join(parts)
        self._pos = 0

    def unpack(self, fmt: str, width: int, what: str) -> int | float | bool:
        self._need(width, what)
        value: int | float | bool = struct.unpack_from(fmt, self._buf, self._pos)[0]
        self._pos += width
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", 8, what))

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def skip(self, n: int, what: str) -> None:
        if n > self.remaining:
            raise _Bad(f"truncated: {what} needs {n} bytes at offset {self.tell}, "
                       f"only {self.remaining} left")
        if n <= len(self._buf) - self._pos:
            self._pos += n
            return
        self._base = self.tell + n
        self._f.seek(self._base)
        self._buf, self._pos = b"", 0

    def length(self, limit: int, unit: int, what: str) -> int:
        """A u64 length prefix, checked against a cap and against the bytes left."""
        n = self.u64(f"length of {what}")
        if n > limit:
            raise _Bad(f"{what} claims {n} items/bytes (limit {limit})")
        if n * unit > self.remaining:
            raise _Bad(f"{what} claims {n * unit} bytes at offset {self.tell}, "
                       f"only {self.remaining} left in the file (truncated?)")
        return n

    def skip_strings(self, count: int, what: str) -> None:
        """Walk ``count`` length-prefixed strings (vocabularies: tens of thousands).

        The inner loop stays inside the buffered window, where every byte is known to
        be in the file; a string crossing the window's edge takes the checked path.
        """
        unpack = _U64.unpack_from
        done = 0
        while done < count:
            buf, pos, end = self._buf, self._pos, len(self._buf)
            while done < count and pos + 8 <= end:
                n = unpack(buf, pos)[0]
                if pos + 8 + n > end:
                    break
                pos += 8 + n
                done += 1
            self._pos = pos
            if done < count:
                self.skip(self.length(MAX_STRING_BYTES, 1, what), what)
                done += 1


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_gguf(path: Path) -> GGUFInfo:
    """Check ``path`` is a well-formed GGUF (v2/v3) file and describe it.

    Raises BadModelFile with one line naming the file and the problem.
    """
    path = Path(path)
    why = problem(path)
    if why == "no such file or directory":
        raise BadModelFile(f"model file not found: {shown(path)}")
    if why is not None:  # never open a FIFO or a device: the read would not end
        raise BadModelFile(f"model path {shown(path)} is {why}, not a GGUF file")
    try:
        with path.open("rb") as f:
            size = _file_size(f)
            return _parse(_Reader(f, size), path)
    except FileNotFoundError:
        raise BadModelFile(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise BadModelFile(f"model path is a directory, not a GGUF file: {path}") from None
    except PermissionError:
        raise BadModelFile(f"cannot read model file {path}: permission denied") from None
    except OSError as exc:
        raise BadModelFile(f"cannot read model file {path}: {exc.strerror or exc}") from None
    except _Bad as exc:
        # Key names come from the file: escape control characters so it stays one line.
        said = _CONTROL.sub(lambda m: repr(m[0])[1:-1], str(exc))
        raise BadModelFile(f"invalid GGUF file {path}: {said}") from None


def _file_size(f: BinaryIO) -> int:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    return size


def _parse(r: _Reader, path: Path) -> GGUFInfo:
    magic = r.take(4, "magic") if r.size >= 4 else b""
    if magic != MAGIC:
        raise _Bad(f"bad magic {magic!r} (expected b'GGUF'); not a GGUF model"
                   if magic else f"too short to be a GGUF model ({r.size} bytes)")
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        hint = (" (big-endian files are not supported)" if version & 0xFFFF == 0 else
                " (GGUF v1 is obsolete; re-convert the model)" if version == 1 else "")
        raise _Bad(f"unsupported GGUF version {version}{hint}; supported: 2, 3")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("key-value count")
    # Each tensor info takes at least 24 bytes and each key-value at least 13: a count
    # that could never fit is refused here; a small count over too few bytes is left
    # to the reads below, which name the field that runs out (a key's length, …).
    if n_tensors > MAX_TENSORS or n_tensors > r.remaining:
        raise _Bad(f"implausible tensor count {n_tensors} ({r.remaining} bytes follow)")
    if n_kv > MAX_KV or n_kv > r.remaining:
        raise _Bad(f"implausible key-value count {n_kv} ({r.remaining} bytes follow)")

    metadata = _read_metadata(r, n_kv)
    alignment = _alignment(metadata)
    tensors = _read_tensor_infos(r, n_tensors, alignment)

    # The data section starts at the next alignment boundary after the header.
    data_offset = -(-r.tell // alignment) * alignment
    if n_tensors and data_offset > r.size:
        raise _Bad(f"tensor data section starts at {data_offset}, past the end of the file "
                   f"({r.size} bytes)")
    data_size = r.size - data_offset
    for t in tensors:
        if t.offset + t.nbytes > data_size:
            raise _Bad(f"tensor '{t.name}' data ({t.nbytes} bytes at data offset {t.offset}) "
                       f"runs past the end of the file ({r.size} bytes); truncated?")

    arch = _str_or_none(metadata.get("general.architecture"))
    ctx = metadata.get(f"{arch}.context_length") if arch else None
    return GGUFInfo(
        path=path, version=version, tensor_count=n_tensors, kv_count=n_kv,
        file_size=r.size, alignment=alignment, data_offset=data_offset,
        parameter_count=sum(_elements(t.shape) for t in tensors),
        architecture=arch, name=_str_or_none(metadata.get("general.name")),
        context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        metadata=metadata, tensors=tuple(tensors),
    )


def _str_or_none(value: Scalar | None) -> str | None:
    return value if isinstance(value, str) else None


def _read_metadata(r: _Reader, n_kv: int) -> dict[str, Scalar]:
    kept: dict[str, Scalar] = {}
    seen: set[bytes] = set()
    for i in range(n_kv):
        raw_key = r.take(r.length(MAX_KEY_BYTES, 1, f"key #{i}"), f"key #{i}")
        key = raw_key.decode("utf-8", "replace")
        if not raw_key:
            raise _Bad(f"key #{i} is empty")
        if raw_key in seen:
            raise _Bad(f"duplicate key '{key}'")
        seen.add(raw_key)
        vtype = r.u32(f"type of '{key}'")
        if vtype == _ARRAY:
            _skip_array(r, key)
        elif vtype == _STRING:
            n = r.length(MAX_STRING_BYTES, 1, f"value of '{key}'")
            if n <= _KEEP_LONG.get(key, _KEEP_STRING_BYTES):
                kept[key] = r.take(n, f"value of '{key}'").decode("utf-8", "replace")
            else:
                r.skip(n, f"value of '{key}'")
        elif vtype in _SCALARS:
            fmt, width = _SCALARS[vtype]
            kept[key] = _typed(vtype, r.unpack(fmt, width, f"value of '{key}'"))
        else:
            raise _Bad(f"key '{key}' has unknown value type {vtype}")
    return kept


def _typed(vtype: int, value: int | float | bool) -> Scalar:
    # The alignment rule below needs to know a uint32 from other ints; tag it.
    return _U32(value) if vtype == 4 else value


class _U32(int):
    """An int that was stored as GGUF uint32 (general.alignment must be one)."""


def _skip_array(r: _Reader, key: str) -> None:
    item_type = r.u32(f"array type of '{key}'")
    if item_type == _STRING:
        count = r.length(MAX_ARRAY_ITEMS, 8, f"array '{key}'")
        r.skip_strings(count, f"string in array '{key}'")
    elif item_type in _SCALARS:
        width = _SCALARS[item_type][1]
        r.skip(r.length(MAX_ARRAY_ITEMS, width, f"array '{key}'") * width, f"array '{key}'")
    else:  # nested arrays are not valid GGUF (ggml refuses them too)
        raise _Bad(f"array '{key}' has invalid item type {item_type}")


def _alignment(metadata: dict[str, Scalar]) -> int:
    value = metadata.get("general.alignment", _U32(DEFAULT_ALIGNMENT))
    if not isinstance(value, _U32):
        raise _Bad("general.alignment must be a uint32")
    if value == 0 or value & (value - 1) or value > MAX_ALIGNMENT:
        raise _Bad(f"alignment {int(value)} is not a power of two up to {MAX_ALIGNMENT}")
    return int(value)


def _read_tensor_infos(r: _Reader, n_tensors: int, alignment: int) -> list[TensorInfo]:
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    expected_offset = 0
    for i in range(n_tensors):
        raw = r.take(r.length(MAX_TENSOR_NAME, 1, f"tensor #{i} name"), f"tensor #{i} name")
        name = raw.decode("utf-8", "replace")
        if name in names:
            raise _Bad(f"duplicate tensor name '{name}'")
        names.add(name)
        n_dims = r.u32(f"dimension count of tensor '{name}'")
        if n_dims > MAX_DIMS:
            raise _Bad(f"tensor '{name}' has {n_dims} dimensions (max {MAX_DIMS})")
        shape = tuple(r.u64(f"shape of tensor '{name}'") for _ in range(n_dims))
        if any(d > INT64_MAX for d in shape) or _elements(shape) > INT64_MAX:
            raise _Bad(f"tensor '{name}' has an impossible shape {shape}")
        ggml_type = r.u32(f"type of tensor '{name}'")
        if ggml_type not in GGML_TYPES:
            raise _Bad(f"tensor '{name}' has unknown ggml type {ggml_type}")
        type_name, block, type_size = GGML_TYPES[ggml_type]
        if shape and shape[0] % block:
            raise _Bad(f"tensor '{name}' row of {shape[0]} is not a multiple of the "
                       f"{type_name} block size {block}")
        nbytes = _elements(shape) // block * type_size
        offset = r.u64(f"data offset of tensor '{name}'")
        # ggml requires tensors laid out in order, each padded to the alignment.
        if offset != expected_offset:
            raise _Bad(f"tensor '{name}' data offset {offset} is not where it must be "
                       f"({expected_offset})")
        if nbytes > r.size:
            raise _Bad(f"tensor '{name}' claims {nbytes} bytes, more than the whole file")
        tensors.append(TensorInfo(name, shape, type_name, offset, nbytes))
        expected_offset += -(-nbytes // alignment) * alignment
    return tensors


def _elements(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


