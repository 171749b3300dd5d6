"""A model the built-in node serves: loaded once in a dedicated worker thread, which then runs every
inference (model contexts are not thread-safe). Embedding requests that arrive together are merged
into one model call.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hanzo_cli.api import ModelNotFoundError, has_gguf_magic, read_gguf_info
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import BATCH_WINDOW, MAX_BATCH_TEXTS
from hanzo_cli.embedding import EmbeddingModel, RerankModel, load_embedding_model, load_reranker

log = logging.getLogger("hanzo.node")


@dataclass
class _Job:
    texts: list[str]
    dimensions: int | None
    future: asyncio.Future[tuple[list[list[float]], int | None]]


@dataclass
class ModelHost:
    """The served model: loaded once in a dedicated worker thread, which then runs every inference;
    concurrent embedding requests are merged into batches of up to :data:`MAX_BATCH_TEXTS` texts."""

    ref: str  # provider:name to load (already pulled)
    name: str  # the name the APIs report
    runtime: str | None = None
    on_fatal: Callable[[], None] = lambda: None  # stops the server when the model cannot load
    model: EmbeddingModel | RerankModel | None = None
    error: str | None = None
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="hanzo-model")
    )
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)

    # -- loading -------------------------------------------------------------------------------------

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        log.info("loading %s", self.ref)
        try:
            self.model = await loop.run_in_executor(self._executor, self._load)
        except Exception as exc:  # noqa: BLE001 - reported as the node's one-line start-up error
            self.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            print(f"Error: {self.error}", file=sys.stderr, flush=True)
            self.on_fatal()
            return
        model = self.model
        kind = (
            f"{model.dimensions}-dimension embedding model"
            if isinstance(model, EmbeddingModel)
            else "reranker"
        )
        elapsed = time.monotonic() - started
        log.info("loaded %s (%s, runtime %s) in %.1f s", self.ref, kind, model.runtime.name, elapsed)

    def _load(self) -> EmbeddingModel | RerankModel:
        from hanzo_cli import models  # reference resolution is not public API yet

        found = models.find(self.ref)
        if found is None or found.path is None:
            raise ModelNotFoundError(f"model {self.ref!r} is not pulled")
        if has_gguf_magic(found.path) and read_gguf_info(found.path).pooling_type == "rank":
            return load_reranker(self.ref, runtime=self.runtime, pull=False)
        return load_embedding_model(self.ref, runtime=self.runtime, pull=False)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def close(self) -> None:
        if self.model is not None:
            self._executor.submit(self.model.close).result()
        self._executor.shutdown()

    # -- requests ------------------------------------------------------------------------------------

    def check_name(self, requested: Any) -> None:
        """404 unless ``requested`` (when given) names the served model."""
        if requested in (None, ""):
            return
        if not isinstance(requested, str):
            raise APIError(400, "model must be a string")
        if _plain(requested) not in self._names():
            raise APIError(404, f"model {requested!r} not found; this node serves {self.name!r}")

    def _names(self) -> set[str]:
        names = {self.name, self.ref}
        if self.model is not None:
            names |= {self.model.info.name, self.model.name}
        return {_plain(n) for n in names}

    def embedding_model(self) -> EmbeddingModel:
        if self.model is None:
            raise APIError(503, "the model is still loading")
        if not isinstance(self.model, EmbeddingModel):
            raise APIError(400, f"{self.name} is a reranker: use POST /v1/rerank")
        return self.model

    async def embed(self, texts: list[str], dimensions: int | None) -> tuple[list[list[float]], int | None]:
        """Vectors for ``texts`` and their token count (None when the runtime cannot count)."""
        model = self.embedding_model()
        if dimensions is not None and not 1 <= dimensions <= model.dimensions:
            raise APIError(400, f"dimensions must be from 1 to {model.dimensions} (the model's size)")
        if not texts:
            return [], 0
        future: asyncio.Future[tuple[list[list[float]], int | None]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Job(texts, dimensions, future))
        return await future

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        if self.model is None:
            raise APIError(503, "the model is still loading")
        if not isinstance(self.model, RerankModel):
            raise APIError(400, f"{self.name} is an embedding model; /v1/rerank needs a reranker")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.model.rerank, query, documents)

    # -- batching ------------------------------------------------------------------------------------

    async def run_batches(self) -> None:
        """Forever: take the waiting jobs (after a short window when only one waits), run them as one
        model call per ``dimensions`` value, and hand each job its share of the vectors."""
        while True:
            jobs = [await self._queue.get()]
            if self._queue.empty():
                await asyncio.sleep(BATCH_WINDOW)
            size = len(jobs[0].texts)
            while size < MAX_BATCH_TEXTS and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].texts)
            by_dimensions: dict[int | None, list[_Job]] = {}
            for job in jobs:
                by_dimensions.setdefault(job.dimensions, []).append(job)
            for group in by_dimensions.values():
                await self._run(group)

    async def _run(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        texts = [text for job in jobs for text in job.texts]
        try:
            vectors, counts = await loop.run_in_executor(
                self._executor, self._embed, texts, jobs[0].dimensions
            )
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) that caused it
            if len(jobs) > 1:  # one bad request must not fail the others batched with it
                for job in jobs:
                    await self._run([job])
                return
            if not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            tokens = sum(counts[start:end]) if counts is not None else None
            if not job.future.done():  # the client may have gone
                job.future.set_result((vectors[start:end], tokens))
            start = end

    def _embed(self, texts: list[str], dimensions: int | None) -> tuple[list[list[float]], list[int] | None]:
        model = self.embedding_model()
        vectors = model.embed(texts, dimensions=dimensions)
        # Token counts for the APIs' usage fields, where the runtime exposes its tokenizer.
        tokenize = getattr(model.embedder, "tokenize", None)
        counts = [len(tokenize(model.prepare(text))) for text in texts] if callable(tokenize) else None
        return vectors, counts

    def fail_waiting(self) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(APIError(503, "the node is shutting down"))


def _plain(name: str) -> str:
    """A model name as compared: case-insensitive, ``:latest`` implied."""
    name = name.strip().lower()
    return name.removesuffix(":latest")
