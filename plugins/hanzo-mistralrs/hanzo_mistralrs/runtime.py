"""The ``mistralrs`` runtime: cheap to import; the engine (mistralrs) loads with a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from hanzo_cli.api import Embedder, Generator, Runtime
from hanzo_mistralrs.architectures import EMBEDDING_ARCHITECTURES, GENERATION_ARCHITECTURES


class MistralRsRuntime(Runtime):
    """mistral.rs through its Python package: embeddings from safetensors folders, text generation
    from GGUF files.

    Each task takes the one format mistral.rs really runs it from here. Embedding: sentence-transformers
    folders (``load_embedder`` pools as the folder's ``1_Pooling/config.json`` says — mean or last
    token — and ignores hanzo's ``pooling`` and llama.cpp's tuning options; mistral.rs schedules its
    own batches and truncates inputs to the model's context). mistral.rs's GGUF loaders build
    generation models only, so GGUF embedders stay with llama.cpp. Generation: GGUFs of the text
    architectures mistral.rs 0.9.5's GGUF loader knows (``GENERATION_ARCHITECTURES``; hanzo's tests
    run Gemma 3, llama and qwen3 ones); ``load_generator`` takes ``context_length`` (default: the
    model's, at most 4096) and ``parallel`` (sequences decoded at once). Safetensors folders are not
    offered for generation: hanzo's generation path loads GGUF models only. llama.cpp (priority 10)
    stays the default for GGUFs; ``--runtime mistralrs`` chooses this one.
    """

    name = "mistralrs"
    description = (
        "mistral.rs (mistralrs): embeddings from Hugging Face safetensors folders "
        "(Qwen3-Embedding, EmbeddingGemma) and text generation from GGUF (Gemma 3, Llama, Qwen3, …)"
    )
    tasks: ClassVar[frozenset[str]] = frozenset({"embed", "generate"})
    formats: ClassVar[frozenset[str]] = frozenset({"gguf", "safetensors"})
    architectures: ClassVar[frozenset[str]] = GENERATION_ARCHITECTURES
    folder_architectures: ClassVar[frozenset[str]] = frozenset(EMBEDDING_ARCHITECTURES)
    priority = 20

    #: The one format each task runs from.
    TASK_FORMATS: ClassVar[dict[str, str]] = {"embed": "safetensors", "generate": "gguf"}

    def supports(self, architecture: str | None, task: str, format: str = "gguf") -> bool:
        return self.TASK_FORMATS.get(task) == format and super().supports(architecture, task, format)

    def summary(self) -> str:
        embed = ", ".join(sorted(self.folder_architectures))
        shown = ", ".join(a for a in ("gemma3", "llama", "mistral3", "phi3", "qwen2", "qwen3"))
        return f"embed on safetensors {embed}; generate on GGUF {shown}, …"

    def available(self) -> bool:
        return importlib.util.find_spec("mistralrs") is not None

    def version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"mistralrs {version('mistralrs')}"
        except PackageNotFoundError:
            return None

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        from hanzo_mistralrs.engine import MistralRsEmbedder

        return MistralRsEmbedder(path)

    def load_generator(self, path: Path, **options: Any) -> Generator:
        from hanzo_mistralrs.generate import MistralRsGenerator

        return MistralRsGenerator(path, **options)
