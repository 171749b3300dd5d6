"""Embedding with mistral.rs: a ``Runner`` over a local model folder, offline.

mistral.rs reads the folder's sentence-transformers pipeline itself (``modules.json``: Pooling,
Dense, Normalize). Its Pooling is strict and partial: every ``pooling_mode_*`` key must be present,
and modes other than mean and last token are ``unimplemented!()`` — a Rust panic in the engine
thread that leaves the runner dead. So the folder is checked here first and anything mistral.rs
would choke on is a one-line error instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hanzo_cli.api import HanzoError, SafetensorsInfo, read_safetensors_info
from hanzo_mistralrs.architectures import EMBEDDING_ARCHITECTURES

#: The keys mistral.rs's ``Pooling`` reads with no defaults (mistralrs-core embedding_models/layers.rs).
POOLING_KEYS = (
    "word_embedding_dimension",
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
    "include_prompt",
)
#: The poolings mistral.rs implements (mean is a sum there; hanzo normalises every vector anyway).
POOLINGS = ("mean", "last")


def _import_mistralrs() -> Any:
    # mistral.rs logs every load step at INFO through tracing (RUST_LOG is read once, on import);
    # hanzo keeps the terminal quiet unless HANZO_DEBUG asks for it or the user set RUST_LOG.
    if os.environ.get("HANZO_DEBUG", "") in ("", "0"):
        os.environ.setdefault("RUST_LOG", "error")
    import mistralrs

    return mistralrs


def check_folder(path: Path) -> SafetensorsInfo:
    """The folder's facts, or a one-line error for what mistral.rs cannot load."""
    info = read_safetensors_info(path)
    if info.missing:
        raise HanzoError(f"{path} lacks {', '.join(info.missing)}")
    if info.architecture not in EMBEDDING_ARCHITECTURES:
        raise HanzoError(
            f"mistral.rs embeds {', '.join(sorted(EMBEDDING_ARCHITECTURES))} models, not "
            f"{info.architecture or 'unknown'} ({path})"
        )
    if not info.sentence_transformers:
        raise HanzoError(
            f"{path} is not a sentence-transformers embedding model (no modules.json): mistral.rs "
            "needs its Pooling and Normalize modules"
        )
    pooling = info.pooling_config
    if pooling is None:
        raise HanzoError(f"{path}: modules.json has no Pooling module; mistral.rs needs one")
    missing = [key for key in POOLING_KEYS if key not in pooling]
    if missing:
        raise HanzoError(
            f"{path}/1_Pooling/config.json lacks {', '.join(missing)} (mistral.rs needs every key)"
        )
    if info.pooling not in POOLINGS:
        raise HanzoError(f"mistral.rs pools by mean or last token only; {path} asks for {info.pooling}")
    if pooling["include_prompt"] is not True:
        raise HanzoError(f"mistral.rs needs include_prompt true in {path}/1_Pooling/config.json")
    return info


def output_dimensions(path: Path, info: SafetensorsInfo) -> int:
    """The vector size: the last Dense module's ``out_features``, else the hidden size."""
    size = info.hidden_size or 0
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        for module in modules:
            if str(module.get("type", "")).endswith(".Dense"):
                config = json.loads((path / module["path"] / "config.json").read_text(encoding="utf-8"))
                size = int(config["out_features"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise HanzoError(f"{path}: unreadable Dense module config ({exc})") from None
    if size <= 0:
        raise HanzoError(f"{path}/config.json has no hidden_size")
    return size


def _first_line(exc: BaseException) -> str:
    # mistral.rs errors carry a Rust backtrace after the first line
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MistralRsEmbedder:
    """A loaded folder; ``embed`` returns mistral.rs's pooled (and, per modules.json, normalised) vectors."""

    def __init__(self, path: Path) -> None:
        info = check_folder(path)
        self.dimensions: int = output_dimensions(path, info)
        mr = _import_mistralrs()
        arch = getattr(mr.EmbeddingArchitecture, EMBEDDING_ARCHITECTURES[str(info.architecture)])
        try:
            self._runner: Any = mr.Runner(
                which=mr.Which.Embedding(model_id=str(path), arch=arch), token_source="none"
            )
        except (ValueError, RuntimeError) as exc:  # ValueError: a Rust error chain, backtrace included
            raise HanzoError(f"mistral.rs cannot load {path}: {_first_line(exc)}") from None
        self._request = mr.EmbeddingRequest

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self._runner is None:
            raise HanzoError("the embedder is closed")
        try:
            vectors: list[list[float]] = self._runner.send_embedding_request(
                self._request(input=list(texts), truncate_sequence=True)
            )
        except (ValueError, RuntimeError) as exc:
            raise HanzoError(f"mistral.rs failed to embed: {_first_line(exc)}") from None
        return vectors

    def close(self) -> None:
        self._runner = None  # the Rust side shuts its engine down when the Runner is dropped
