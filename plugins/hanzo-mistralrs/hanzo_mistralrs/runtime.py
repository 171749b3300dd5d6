"""The ``mistralrs`` runtime: cheap to import; the engine (mistralrs) loads with a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from hanzo_cli.api import Embedder, Runtime
from hanzo_mistralrs.architectures import EMBEDDING_ARCHITECTURES


class MistralRsRuntime(Runtime):
    """mistral.rs through its Python package: sentence-transformers safetensors folders.

    It reads no GGUF for embedding (mistral.rs's GGUF loaders are for text generation, which hanzo
    does not run), so GGUFs stay with llama.cpp. ``load_embedder`` embeds with the folder's own
    ``1_Pooling/config.json`` (mistral.rs pools by mean or last token) and ignores hanzo's
    ``pooling`` option and llama.cpp's tuning options (``threads``, ``batch_tokens``, ``max_tokens``):
    mistral.rs schedules its own batches and truncates inputs to the model's context.
    """

    name = "mistralrs"
    description = (
        "mistral.rs (mistralrs): embeddings from Hugging Face safetensors folders "
        "(Qwen3-Embedding, EmbeddingGemma)"
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"embed"})
    formats: ClassVar[frozenset[str]] = frozenset({"safetensors"})
    folder_architectures: ClassVar[frozenset[str]] = frozenset(EMBEDDING_ARCHITECTURES)
    priority = 20

    def available(self) -> bool:
        return importlib.util.find_spec("mistralrs") is not None

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        from hanzo_mistralrs.engine import MistralRsEmbedder

        return MistralRsEmbedder(path)
