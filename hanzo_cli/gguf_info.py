"""GGUF metadata (architecture, sizes, quantization), read from the header without loading tensors."""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
POOLING_TYPES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def has_gguf_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


@dataclass
class GGUFInfo:
    architecture: str | None = None
    name: str | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    head_count: int | None = None
    file_type: str | None = None
    parameter_count: int | None = None
    pooling_type: str | None = None
    tokenizer: str | None = None
    tensor_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The tables below are gguf-py's (gguf 0.19: GGML_QUANT_SIZES, LlamaFileType), copied so that
# reading a header does not import the gguf package, which pulls in numpy, yaml and its lazy
# tensor machinery: ~0.1 s of every `hanzo embedding:test`. A type missing here is not checked.
_DEFAULT_ALIGNMENT = 32
_GGML_BLOCKS = {  # ggml type id: (elements per block, bytes per block), as gguf.GGML_QUANT_SIZES
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 40),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
    40: (64, 36),  # NVFP4
    41: (128, 18),  # Q1_0
}
_FILE_TYPES = {  # general.file_type: name, as gguf.LlamaFileType without MOSTLY_/ALL_
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
    1024: "GUESSED",
}

_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Walks a GGUF header in place. Unlike ``gguf.GGUFReader``, which builds numpy views of every
    token of the vocabulary (seconds for a 150K-token Qwen3 tokenizer), arrays are skipped."""

    def __init__(self, buf: memoryview, order: str) -> None:
        self.buf, self.pos, self.order = buf, 0, order

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def advance(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("a value runs past the end of the file")
        self.pos += n

    def string(self) -> str:
        length = self.unpack("Q")
        start = self.pos
        self.advance(length)
        return bytes(self.buf[start : self.pos]).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        """The value of type ``vtype`` at the cursor; arrays are skipped and give None."""
        if vtype in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise ValueError(f"unknown GGUF value type {vtype}")
        item, count = self.unpack("I"), self.unpack("Q")
        if item in _SCALAR_FORMATS:
            self.advance(count * struct.calcsize(_SCALAR_FORMATS[item]))
        elif item == _STRING:  # the vocabulary: hundreds of thousands of strings, so a tight loop
            length = struct.Struct(self.order + "Q").unpack_from
            pos, end = self.pos, len(self.buf)
            for _ in range(count):
                pos += 8 + length(self.buf, pos)[0]
                if pos > end:
                    raise ValueError("a value runs past the end of the file")
            self.pos = pos
        else:
            for _ in range(count):
                self.value(item)
        return None


def _read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """(scalar key/values, tensor count, parameter count) of a GGUF, checking that every tensor's
    data lies inside the file (so truncated downloads are refused)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            version = struct.unpack_from("<I", buf, 4)[0]
            order = ">" if version & 0xFFFF == 0 else "<"  # big-endian files, as gguf detects them
            cur = _Cursor(buf, order)
            cur.pos = 4
            version, n_tensors, n_kv = cur.unpack("I"), cur.unpack("Q"), cur.unpack("Q")
            if version not in (2, 3):
                raise ValueError(f"unsupported GGUF version {version}")
            # the pseudo-keys gguf.GGUFReader reports too
            meta: dict[str, Any] = {
                "GGUF.version": version,
                "GGUF.tensor_count": n_tensors,
                "GGUF.kv_count": n_kv,
            }
            for _ in range(n_kv):
                key = cur.string()
                value = cur.value(cur.unpack("I"))
                if value is not None:
                    meta[key] = value
            tensors: list[tuple[int, int, int]] = []  # (elements, type, offset)
            for _ in range(n_tensors):
                cur.string()
                dims = [cur.unpack("Q") for _ in range(cur.unpack("I"))]
                tensors.append((math.prod(dims), cur.unpack("I"), cur.unpack("Q")))
            alignment = meta.get("general.alignment", _DEFAULT_ALIGNMENT)
            data_start = -(-cur.pos // alignment) * alignment
            for elements, ggml_type, offset in tensors:
                if ggml_type not in _GGML_BLOCKS:
                    continue
                block, size = _GGML_BLOCKS[ggml_type]
                if data_start + offset + elements // block * size > len(buf):
                    raise ValueError("tensor data runs past the end of the file (truncated?)")
            return meta, len(tensors), sum(t[0] for t in tensors)
        finally:
            buf.release()


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read a GGUF file's header. Raises HanzoError for files that are not valid GGUF."""
    if not has_gguf_magic(path):
        raise ModelFileError(f"{path} is not a GGUF file")
    try:
        scalars, tensor_count, tensor_params = _read_header(path)
    except Exception as exc:  # noqa: BLE001 - struct/ValueError/KeyError/… on bad files
        raise ModelFileError(f"cannot read GGUF metadata from {path}: {exc}") from None

    meta = {key: value for key, value in scalars.items() if not key.startswith("tokenizer.ggml.")}
    arch = meta.get("general.architecture")

    def arch_key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}") if arch else None

    file_type = meta.get("general.file_type")
    file_type_name: str | None = None
    if isinstance(file_type, int):
        file_type_name = _FILE_TYPES.get(file_type, str(file_type))
    params = meta.get("general.parameter_count")
    if not isinstance(params, int):
        params = tensor_params or None
    pooling = arch_key("pooling_type")
    tok = scalars.get("tokenizer.ggml.model")
    return GGUFInfo(
        architecture=arch if isinstance(arch, str) else None,
        name=meta.get("general.name"),
        context_length=arch_key("context_length"),
        embedding_length=arch_key("embedding_length"),
        block_count=arch_key("block_count"),
        head_count=arch_key("attention.head_count"),
        file_type=file_type_name,
        parameter_count=params,
        pooling_type=POOLING_TYPES.get(pooling, str(pooling)) if pooling is not None else None,
        tokenizer=tok if isinstance(tok, str) else None,
        tensor_count=tensor_count,
        metadata=meta,
    )
