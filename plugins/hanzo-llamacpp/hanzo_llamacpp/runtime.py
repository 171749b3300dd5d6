"""The ``llamacpp`` runtime: cheap to import; the engine (llama_cpp, numpy) loads with a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from hanzo_cli.api import Embedder, Generator, Reranker, Runtime
from hanzo_llamacpp.architectures import LLAMA_CPP_ARCHITECTURES


class LlamaCppRuntime(Runtime):
    """llama.cpp through llama-cpp-python: every text architecture llama.cpp knows.

    ``load_embedder`` takes ``pooling`` (mean, cls or last; hanzo passes the model's own or its
    Qwen3 rule), ``threads``, ``batch_tokens`` (tokens per batch for short texts, 64) and
    ``max_tokens`` (longer inputs are truncated; 8192 or the model's context if smaller).
    Reranking needs a GGUF converted with ``rank`` pooling and a classifier head. ``load_generator``
    takes ``context_length`` (default: the model's, at most 4096) and ``threads``.
    """

    name = "llamacpp"
    description = (
        "llama.cpp (llama-cpp-python): embeddings, reranking and generation for most GGUF architectures"
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"embed", "rerank", "generate"})
    architectures: ClassVar[frozenset[str]] = LLAMA_CPP_ARCHITECTURES
    priority = 10

    def summary(self) -> str:
        shown = ", ".join(a for a in ("bert", "gemma3", "llama", "nomic-bert", "qwen2", "qwen3"))
        return f"embed/rerank on {len(self.architectures)} llama.cpp architectures ({shown}, …); generate"

    def available(self) -> bool:
        return importlib.util.find_spec("llama_cpp") is not None

    def version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"llama-cpp-python {version('llama_cpp_python')}"
        except PackageNotFoundError:
            return None

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        from hanzo_llamacpp.engine import LlamaEmbedder

        pooling = options.pop("pooling", None) or "mean"
        return LlamaEmbedder(path, pooling, **options)

    def load_reranker(self, path: Path, **options: Any) -> Reranker:
        from hanzo_llamacpp.engine import LlamaReranker

        return LlamaReranker(path, **options)

    def load_generator(self, path: Path, **options: Any) -> Generator:
        from hanzo_llamacpp.generate import LlamaGenerator

        return LlamaGenerator(path, **options)
