"""The ``ctransformers`` runtime: llama-architecture GGUFs, last-token embeddings."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hanzo_cli.api import Embedder, HanzoError, Runtime

if TYPE_CHECKING:
    from ctransformers import LLM

#: Tokens evaluated per step; the bundled llama.cpp sizes its buffers for up to 512.
EVAL_BATCH = 256


class CTransformersRuntime(Runtime):
    """ctransformers 0.2.27. Its bundled llama.cpp also names falcon, but only llama-architecture
    GGUFs written by today's ``gguf`` are verified to load (tests/runtimes/test_ctransformers.py),
    so only those are claimed.
    """

    name = "ctransformers"
    description = "ctransformers 0.2.27 (unmaintained): embeddings from llama-architecture GGUFs"
    tasks: ClassVar[frozenset[str]] = frozenset({"embed"})
    architectures: ClassVar[frozenset[str]] = frozenset({"llama"})
    priority = 50

    def available(self) -> bool:
        return importlib.util.find_spec("ctransformers") is not None

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        pooling = options.get("pooling") or "last"
        if pooling != "last":
            raise HanzoError(
                f"ctransformers embeds with the last token only; this model needs {pooling} pooling "
                "(use --runtime llamacpp)"
            )
        return CTransformersEmbedder(path, threads=options.get("threads"))


class CTransformersEmbedder:
    """One text at a time: ctransformers' ``embed`` returns the last token's hidden state."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        from ctransformers import LLM

        try:
            self._llm: LLM | None = LLM(str(path))
        except RuntimeError as exc:  # its only message: "Failed to create LLM ..."
            raise HanzoError(f"ctransformers cannot load {path}: {exc}") from None
        self._threads = threads or -1
        self.dimensions: int = len(self._run([self._llm.bos_token_id]))

    def _run(self, tokens: list[int]) -> list[float]:
        assert self._llm is not None, "embedder is closed"
        return list(self._llm.embed(tokens, batch_size=EVAL_BATCH, threads=self._threads))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        assert self._llm is not None, "embedder is closed"
        limit = self._llm.context_length
        return [self._run(self._llm.tokenize(text)[:limit]) for text in texts]

    def close(self) -> None:
        self._llm = None  # ctransformers frees the model when the LLM object goes away
