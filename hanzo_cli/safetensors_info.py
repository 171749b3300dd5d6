"""What a Hub model folder is, read without loading it: ``config.json``, the safetensors headers and
the sentence-transformers module configs.

A model is either one GGUF file or a folder as the Hub ships it (``config.json``, the tokenizer,
``*.safetensors`` shards with their index, and for sentence-transformers models ``modules.json`` and
``1_Pooling/config.json``). :func:`model_format` tells which; :func:`read_safetensors_info` reads
the facts ``model:show`` prints and the runtimes need (architecture, pooling, missing files).

A safetensors file starts with an 8-byte little-endian header length and a JSON header mapping each
tensor name to its dtype, shape and offsets; only that header is read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

from hanzo_cli.constants import GGUF_FORMAT, MODEL_FORMATS, SAFETENSORS_FORMAT
from hanzo_cli.errors import ModelFileError

FORMATS = MODEL_FORMATS

INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
#: A header larger than this is not a real one (the 8B model's are ~100 KB).
MAX_HEADER = 100 * 1024 * 1024
#: sentence-transformers' Pooling modes, as its config.json names them -> hanzo's pooling names.
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "last",
}


def model_format(path: Path | None) -> str | None:
    """``"gguf"`` for a GGUF file, ``"safetensors"`` for a model folder (one with ``config.json``),
    else None."""
    from hanzo_cli.gguf_info import has_gguf_magic

    if path is None:
        return None
    if path.is_dir():
        return SAFETENSORS_FORMAT if (path / "config.json").is_file() else None
    return GGUF_FORMAT if has_gguf_magic(path) else None


@dataclass
class SafetensorsInfo:
    """The facts of a model folder. ``architecture`` is config.json's ``model_type`` (``qwen3``)."""

    path: Path
    architecture: str | None = None
    #: config.json ``architectures``: the transformers classes (``Qwen3ForCausalLM``).
    architectures: list[str] = field(default_factory=list)
    hidden_size: int | None = None
    layers: int | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    #: The safetensors dtype most parameters have (``BF16``, ``F32``), from the headers.
    dtype: str | None = None
    parameter_count: int = 0
    #: Weight files, relative to the folder (from the index when there is one).
    shards: list[str] = field(default_factory=list)
    #: sentence-transformers pooling (``last``, ``mean``, ``cls``; several joined by ``+``), or None.
    pooling: str | None = None
    #: The raw ``1_Pooling/config.json`` (runtimes check the keys they need).
    pooling_config: dict[str, Any] | None = None
    #: Whether the sentence-transformers pipeline ends with a Normalize module.
    normalize: bool = False
    #: Whether ``modules.json`` is there (a sentence-transformers model).
    sentence_transformers: bool = False
    #: Files the folder must have for a runtime to load it but lacks (shards, tokenizer, pooling config).
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "architectures": self.architectures,
            "hidden_size": self.hidden_size,
            "layers": self.layers,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "dtype": self.dtype,
            "parameter_count": self.parameter_count,
            "shards": self.shards,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "missing": self.missing,
        }


def read_safetensors_info(folder: Path) -> SafetensorsInfo:
    """Read ``folder``'s config, safetensors headers and module configs; a malformed file is a
    one-line :class:`ModelFileError`, a missing one is listed in ``missing``."""
    config = _json_object(folder / "config.json", "config")
    nested = config.get("text_config")
    text: dict[str, Any] = nested if isinstance(nested, dict) else {}

    def number(key: str) -> int | None:
        value = config.get(key, text.get(key))
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    info = SafetensorsInfo(
        path=folder,
        architecture=_str(config.get("model_type")),
        architectures=[a for a in config.get("architectures") or [] if isinstance(a, str)],
        hidden_size=number("hidden_size"),
        layers=number("num_hidden_layers"),
        vocab_size=number("vocab_size"),
        context_length=number("max_position_embeddings"),
    )
    info.shards = _shards(folder)
    if not info.shards:
        info.missing.append("*.safetensors")
    by_dtype: dict[str, int] = {}
    for shard in info.shards:
        path = folder / shard
        if not path.is_file():
            info.missing.append(shard)
            continue
        for dtype, count in _header_counts(path).items():
            by_dtype[dtype] = by_dtype.get(dtype, 0) + count
    info.parameter_count = sum(by_dtype.values())
    info.dtype = max(by_dtype, key=by_dtype.__getitem__) if by_dtype else None
    if not (folder / TOKENIZER).is_file():
        info.missing.append(TOKENIZER)
    _read_modules(folder, info)
    return info


def _shards(folder: Path) -> list[str]:
    index = folder / INDEX
    if index.is_file():
        weight_map = _json_object(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ModelFileError(f"{index} is malformed: it has no weight_map of tensor -> file")
        return sorted(set(weight_map.values()))
    return sorted(p.name for p in folder.glob("*.safetensors"))


def _header_counts(path: Path) -> dict[str, int]:
    """Parameters per dtype in one safetensors file, from its header."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than its 8-byte header length")
            (size,) = struct.unpack("<Q", raw)
            if size > MAX_HEADER:
                raise ValueError(f"header length {size} is not plausible")
            header = json.loads(f.read(size))
        counts: dict[str, int] = {}
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + prod(tensor["shape"])
        return counts
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors file ({exc})") from None


def _read_modules(folder: Path, info: SafetensorsInfo) -> None:
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
        kinds = {str(m["type"]).rsplit(".", 1)[-1]: str(m.get("path", "")) for m in modules}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelFileError(f"{modules_path} is malformed: {exc}") from None
    info.sentence_transformers = True
    info.normalize = "Normalize" in kinds
    if "Pooling" not in kinds:
        return
    config_path = folder / kinds["Pooling"] / "config.json"
    if not config_path.is_file():
        info.missing.append(config_path.relative_to(folder).as_posix())
        return
    pooling = _json_object(config_path, "pooling config")
    modes = []
    for key, name in POOLING_MODES.items():
        value = pooling.get(key, False)
        if not isinstance(value, bool):
            raise ModelFileError(f"{config_path} is malformed: {key} is {value!r}, not true or false")
        if value:
            modes.append(name)
    if not modes:
        raise ModelFileError(f"{config_path} is malformed: no pooling_mode_* is true")
    info.pooling_config = pooling
    info.pooling = "+".join(modes)


def _json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path.parent} has no {path.name}; it is not a model folder") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ModelFileError(f"{path} is malformed: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} is malformed: the {what} is not a JSON object")
    return data


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
