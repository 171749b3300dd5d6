"""A GGUF's vocabulary, and the Hugging Face ``tokenizer.json`` that tokenizes as llama.cpp does for
SentencePiece (``tokenizer.ggml.model`` ``llama``) vocabularies.

Why hanzo writes one: mistral.rs 0.9.5 converts a SentencePiece GGUF vocabulary into a *Unigram*
tokenizer that reads ``tokenizer.ggml.scores`` as log-probabilities. The converters that write these
GGUFs (Gemma, Llama 2, Mistral …) store BPE merge priorities there, and llama.cpp tokenizes them by
merging the adjacent pair whose union scores highest. Read as Unigram, Gemma 3's vocabulary splits
"▁capital" into ▁c/ap/it/al, adds no BOS token, and the model answers gibberish. A BPE model whose
merges are every split of every token, ranked by the token's score (what transformers' GGUF loader
does), with byte fallback and the GGUF's BOS and space-prefix settings, gives llama.cpp's token ids.
BPE (``gpt2``) vocabularies are left to mistral.rs's own conversion, which has their pre-tokenizers.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.api import HanzoError

#: llama.cpp token types (``tokenizer.ggml.token_type``).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE = "\u2581"  # SentencePiece's word boundary

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass
class Vocabulary:
    """What a GGUF says about its tokenizer."""

    model: str  # tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE) …
    tokens: list[str]
    scores: list[float]
    types: list[int]
    settings: dict[str, Any] = field(default_factory=dict)  # the other tokenizer.* keys

    def token(self, key: str) -> str | None:
        """The text of the ``tokenizer.ggml.KEY`` token (``bos_token_id`` …), if the GGUF names one."""
        index = self.settings.get(f"tokenizer.ggml.{key}")
        if isinstance(index, int) and 0 <= index < len(self.tokens):
            return self.tokens[index]
        return None


def read_vocabulary(path: Path) -> Vocabulary:
    """The ``tokenizer.*`` keys of a GGUF (the vocabulary arrays included), read from its header."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                values = _read_tokenizer_keys(buf)
            finally:
                buf.release()  # the map cannot close while a view of it exists
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise HanzoError(f"cannot read the vocabulary of {path}: {exc}") from None
    tokens = values.pop("tokenizer.ggml.tokens", None)
    if not isinstance(tokens, list) or not tokens:
        raise HanzoError(f"{path} has no tokenizer.ggml.tokens: mistral.rs needs the GGUF's vocabulary")
    scores = values.pop("tokenizer.ggml.scores", None) or [0.0] * len(tokens)
    types = values.pop("tokenizer.ggml.token_type", None) or [NORMAL] * len(tokens)
    if len(scores) != len(tokens) or len(types) != len(tokens):
        raise HanzoError(f"{path}: tokenizer.ggml.scores/token_type do not match the vocabulary's size")
    return Vocabulary(str(values.get("tokenizer.ggml.model", "")), tokens, scores, types, values)


def _read_tokenizer_keys(buf: memoryview) -> dict[str, Any]:
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError("not a GGUF file")
    order = ">" if struct.unpack_from("<I", buf, 4)[0] & 0xFFFF == 0 else "<"
    pos = 8 + 8  # magic, version, tensor count
    (n_kv,) = struct.unpack_from(order + "Q", buf, pos)
    pos += 8
    length = struct.Struct(order + "Q").unpack_from

    def string(at: int) -> tuple[str, int]:
        size = length(buf, at)[0]
        start = at + 8
        if start + size > len(buf):
            raise ValueError("a string runs past the end of the file")
        return bytes(buf[start : start + size]).decode("utf-8", errors="replace"), start + size

    def value(vtype: int, at: int, keep: bool) -> tuple[Any, int]:
        if vtype in _SCALARS:
            fmt = order + _SCALARS[vtype]
            return struct.unpack_from(fmt, buf, at)[0], at + struct.calcsize(fmt)
        if vtype == _STRING:
            return string(at)
        if vtype != _ARRAY:
            raise ValueError(f"unknown GGUF value type {vtype}")
        item, count = struct.unpack_from(order + "IQ", buf, at)
        at += 12
        if item in _SCALARS:
            size = struct.calcsize(_SCALARS[item]) * count
            items = list(struct.unpack_from(f"{order}{count}{_SCALARS[item]}", buf, at)) if keep else None
            return items, at + size
        items_list: list[Any] = []
        for _ in range(count):
            element, at = value(item, at, keep)
            if keep:
                items_list.append(element)
        return (items_list if keep else None), at

    found: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (vtype,) = struct.unpack_from(order + "I", buf, pos)
        keep = key.startswith("tokenizer.")
        item, pos = value(vtype, pos + 4, keep)
        if keep:
            found[key] = item
    return found


def sentencepiece_tokenizer_json(vocab: Vocabulary) -> dict[str, Any]:
    """A ``tokenizer.json`` (Hugging Face tokenizers) that reproduces llama.cpp's SentencePiece
    tokenization of ``vocab``: see the module's docstring for why."""
    tokens, types, scores = vocab.tokens, vocab.types, vocab.scores
    ids = {token: index for index, token in enumerate(tokens)}
    if len(ids) != len(tokens):  # a tokenizer.json maps each token text to one id
        raise HanzoError(
            "the GGUF's vocabulary lists a token twice; mistral.rs cannot tokenize it as llama.cpp does"
        )
    mergeable = {token for token, kind in zip(tokens, types, strict=True) if kind == NORMAL}
    # llama.cpp merges the adjacent pair whose union is a normal token with the highest score
    ranked: list[tuple[float, int, int, str, str]] = []
    for index, token in enumerate(tokens):
        if types[index] != NORMAL:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((-scores[index], index, ids[left], left, right))
    ranked.sort()
    # control and user-defined tokens are matched whole in the text before merging, as llama.cpp does
    added = [
        {
            "id": index,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": types[index] != USER_DEFINED,
        }
        for index, token in enumerate(tokens)
        if types[index] in (UNKNOWN, CONTROL, USER_DEFINED)
    ]
    # llama.cpp's defaults for a SentencePiece vocabulary that does not say: BOS and a space prefix
    add_bos = vocab.settings.get("tokenizer.ggml.add_bos_token", True) is not False
    space_prefix = vocab.settings.get("tokenizer.ggml.add_space_prefix", True) is not False
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    normalizer: dict[str, Any] = replace
    decoders: list[dict[str, Any]] = [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if space_prefix:
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, replace]}
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    bos = vocab.token("bos_token_id")
    post_processor: dict[str, Any] | None = None
    if add_bos and bos is not None:
        first = {"SpecialToken": {"id": bos, "type_id": 0}}
        post_processor = {
            "type": "TemplateProcessing",
            "single": [first, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [first, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [ids[bos]], "tokens": [bos]}},
        }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": None,
        "post_processor": post_processor,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": vocab.token("unknown_token_id"),
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": ids,
            "merges": [[left, right] for *_, left, right in ranked],
        },
    }
