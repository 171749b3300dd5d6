"""A cheap preflight of a GGUF file, run before a native runtime (llama.cpp, ctransformers) sees it.

Those runtimes abort the whole process on some broken files instead of raising: a SentencePiece
(``llama``) vocabulary without the byte-fallback tokens ``<0x00>``…``<0xFF>`` makes llama.cpp's
tokenizer throw ``std::out_of_range`` (``unordered_map::at``) on the first character outside the
vocabulary, which nothing catches. What can be decided from the header is checked here, each in
one pass over bytes already mapped:

- tensor data lies inside the file (a truncated download; see :mod:`hanzo_cli.gguf_info`);
- the keys every loader reads first: ``general.architecture`` and its ``context_length``,
  ``embedding_length`` and ``block_count``;
- the vocabulary agrees with its tokenizer: ``tokens``, ``scores`` and ``token_type`` of one length,
  ``scores`` for ``llama`` (SPM), ``merges`` for ``gpt2`` (BPE), and for SPM the 256 byte tokens.

A file that passes is remembered by its identity (device, inode, size, mtime_ns), so loading an
unchanged model again does not walk its header twice.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hanzo_cli.errors import ModelFileError
from hanzo_cli.gguf_info import GGUF_MAGIC, read_gguf_info

__all__ = ["check_gguf"]

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_CHECK_TAG = "gguf-preflight-v1"
#: An SPM byte token as stored in a GGUF string array: its uint64 length 6, then ``<0xHH>``.
_BYTE_TOKEN_LE = re.compile(rb"\x06\x00\x00\x00\x00\x00\x00\x00<0x([0-9A-Fa-f]{2})>")
_BYTE_TOKEN_BE = re.compile(rb"\x00\x00\x00\x00\x00\x00\x00\x06<0x([0-9A-Fa-f]{2})>")


@dataclass
class _Array:
    item_type: int
    count: int
    start: int  # offset of the first item
    end: int  # offset just past the last item


@dataclass
class _Header:
    scalars: dict[str, object] = field(default_factory=dict)
    arrays: dict[str, _Array] = field(default_factory=dict)


def check_gguf(path: Path, label: str | None = None) -> None:
    """Raise ModelFileError (one line naming ``label`` or the file, and the problem) when the GGUF
    at ``path`` would make a runtime fail or abort in a way the header shows."""
    from hanzo_cli.verified import is_remembered, remember

    if is_remembered(path, _CHECK_TAG):
        return
    name = label or str(path)
    read_gguf_info(path)  # magic, version, every value and tensor inside the file
    try:
        header = _walk(path)
    except (ValueError, struct.error) as exc:
        raise ModelFileError(f"{name}: cannot read its GGUF header: {exc}") from None
    problem = _architecture_problem(header) or _vocabulary_problem(path, header)
    if problem:
        raise ModelFileError(f"{name}: {problem}; the file is broken")
    remember(path, _CHECK_TAG)


def _architecture_problem(header: _Header) -> str | None:
    arch = header.scalars.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        return "it names no general.architecture"
    # What every loader reads first (llama.cpp's hparams, ctransformers' llama loader, hanzo's
    # dimensions). Deeper keys (head counts, rope) are left to the runtime: llama.cpp reports a
    # missing one as an exception naming it, which hanzo already turns into one line.
    needed = ["context_length", "embedding_length", "block_count"]
    missing = [
        f"{arch}.{key}"
        for key in needed
        if f"{arch}.{key}" not in header.scalars and f"{arch}.{key}" not in header.arrays
    ]
    if missing:
        return f"it lacks the key(s) a {arch} model needs: {', '.join(missing)}"
    return None


def _vocabulary_problem(path: Path, header: _Header) -> str | None:
    model = header.scalars.get("tokenizer.ggml.model")
    if model is None or model == "none":
        return None  # no vocabulary in the file: nothing to tokenize with, nothing to check
    tokens = header.arrays.get("tokenizer.ggml.tokens")
    if tokens is None or tokens.item_type != _STRING or tokens.count == 0:
        return f"its {model} tokenizer has no token list (tokenizer.ggml.tokens)"
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        other = header.arrays.get(key)
        if other is not None and other.count != tokens.count:
            return f"its vocabulary has {tokens.count} tokens but {other.count} entries in {key}"
    if model == "llama" and "tokenizer.ggml.scores" not in header.arrays:
        return "its SPM (llama) tokenizer has no tokenizer.ggml.scores"
    if model == "gpt2" and "tokenizer.ggml.merges" not in header.arrays:
        return "its BPE (gpt2) tokenizer has no tokenizer.ggml.merges"
    if model == "llama":
        present = _byte_tokens(path, tokens, big_endian=header.scalars.get("GGUF.big_endian") is True)
        if len(present) < 256:
            return (
                f"its SPM (llama) vocabulary lacks {256 - len(present)} of the 256 byte tokens "
                "<0x00>..<0xFF> (runtimes abort on text outside the vocabulary)"
            )
    return None


def _byte_tokens(path: Path, tokens: _Array, *, big_endian: bool) -> set[int]:
    """Which of the byte tokens ``<0xHH>`` the token list holds (one regex pass over its bytes)."""
    pattern = _BYTE_TOKEN_BE if big_endian else _BYTE_TOKEN_LE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        region = mm[tokens.start : tokens.end]
    return {int(m.group(1), 16) for m in pattern.finditer(region)}


def _walk(path: Path) -> _Header:
    """Key/values of the header: scalars by value, arrays by type, count and byte span."""
    header = _Header()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[:4] != GGUF_MAGIC:
            raise ValueError("not a GGUF file")
        version = struct.unpack_from("<I", mm, 4)[0]
        order = ">" if version & 0xFFFF == 0 else "<"
        header.scalars["GGUF.big_endian"] = order == ">"
        u32, u64 = struct.Struct(order + "I").unpack_from, struct.Struct(order + "Q").unpack_from
        end = len(mm)
        pos = 8 + 8  # magic, version, tensor count
        (n_kv,) = u64(mm, pos)
        pos += 8

        def string(at: int) -> tuple[str, int]:
            (length,) = u64(mm, at)
            stop = at + 8 + length
            if stop > end:
                raise ValueError("a string runs past the end of the file")
            return mm[at + 8 : stop].decode("utf-8", errors="replace"), stop

        for _ in range(n_kv):
            key, pos = string(pos)
            (vtype,) = u32(mm, pos)
            pos += 4
            if vtype in _SCALAR_SIZES:
                fmt = {1: "b", 2: "H", 4: "I", 8: "Q"}[_SCALAR_SIZES[vtype]]
                (value,) = struct.unpack_from(order + fmt, mm, pos)
                header.scalars[key] = value
                pos += _SCALAR_SIZES[vtype]
            elif vtype == _STRING:
                header.scalars[key], pos = string(pos)
            elif vtype == _ARRAY:
                (item,) = u32(mm, pos)
                (count,) = u64(mm, pos + 4)
                start = pos = pos + 12
                if item in _SCALAR_SIZES:
                    pos += count * _SCALAR_SIZES[item]
                elif item == _STRING:
                    for _ in range(count):
                        pos += 8 + u64(mm, pos)[0]
                        if pos > end:
                            raise ValueError("an array runs past the end of the file")
                else:
                    raise ValueError(f"{key}: nested arrays are not expected in a model header")
                if pos > end:
                    raise ValueError("an array runs past the end of the file")
                header.arrays[key] = _Array(item, count, start, pos)
            else:
                raise ValueError(f"{key}: unknown GGUF value type {vtype}")
    return header
