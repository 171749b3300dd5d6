"""One model the built-in node serves: loaded in its own worker thread, which then runs every inference
of that model (model contexts are not thread-safe; different models run side by side). Embedding
requests that arrive together are merged into one model call.

Requests that come while the model loads wait for it (as Ollama's do), instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hanzo_cli.api import (
    GenerationChunk,
    HanzoError,
    ModelInfo,
    SamplingOptions,
    has_gguf_magic,
    read_gguf_info,
)
from hanzo_cli.builtin.generation import GenerationModel, load_generation_model
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import BATCH_WINDOW, MAX_BATCH_TEXTS
from hanzo_cli.embedding import EmbeddingModel, RerankModel, load_embedding_model, load_reranker

log = logging.getLogger("hanzo.node")

Vectors = list[list[float]]


@dataclass(frozen=True)
class EmbedRequest:
    """What one embedding request asks of the model."""

    texts: list[str]
    dimensions: int | None = None  # None or >= the native size: the whole vector (as Ollama)
    normalize: bool = True  # False: the runtime's pooled vector as it is (Ollama's legacy route)
    truncate: bool = True  # False: an input longer than the model's context is a 400


@dataclass
class _Job:
    request: EmbedRequest
    future: asyncio.Future[tuple[Vectors, int | None]]

    @property
    def key(self) -> tuple[int | None, bool, bool]:
        """Jobs with the same key can share one model call."""
        return self.request.dimensions, self.request.normalize, self.request.truncate


@dataclass
class ModelHost:
    """A served model: ``info`` says which (already on disk), ``name`` is what the APIs report."""

    info: ModelInfo
    name: str
    runtime: str | None = None
    #: "embed" (embedding or reranking, by the GGUF's pooling) or "generate".
    role: str = "embed"
    #: Seconds to stay loaded after the last request: None forever, 0 unload at once.
    keep_alive: float | None = None
    model: EmbeddingModel | RerankModel | GenerationModel | None = None
    error: str | None = None
    loaded_at: float = 0.0  # time.time()
    last_used: float = field(default_factory=time.monotonic)
    #: When an idle model unloads (time.monotonic()), None for never.
    expires: float | None = None
    active: int = 0  # requests in progress
    #: Set once the load has ended, loaded or failed.
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="hanzo-model")
    )
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _batcher: asyncio.Task[None] | None = None

    @property
    def ref(self) -> str:
        return f"{self.info.provider}:{self.info.name}"

    @property
    def key(self) -> str:
        """The pool's key: one model may be loaded once to embed and once to generate."""
        return self.ref if self.role == "embed" else f"{self.ref}#{self.role}"

    # -- loading -------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model (once); afterwards :attr:`model` or :attr:`error` is set."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        log.info("loading %s", self.ref)
        try:
            self.model = await loop.run_in_executor(self._executor, self._load)
        except Exception as exc:  # noqa: BLE001 - reported to the requests (and the log)
            self.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            log.error("cannot load %s: %s", self.ref, self.error)
        else:
            self.loaded_at = time.time()
            self._batcher = asyncio.create_task(self._run_batches())
            model = self.model
            kind = (
                f"{model.dimensions}-dimension embedding model"
                if isinstance(model, EmbeddingModel)
                else "reranker"
                if isinstance(model, RerankModel)
                else "generator"
            )
            elapsed = time.monotonic() - started
            log.info("loaded %s (%s, runtime %s) in %.1f s", self.ref, kind, model.runtime.name, elapsed)
        finally:
            self.settled.set()

    def _load(self) -> EmbeddingModel | RerankModel | GenerationModel:
        if self.role == "generate":
            return load_generation_model(self.ref, runtime=self.runtime, pull=False)
        path = self.info.path
        if path is not None and has_gguf_magic(path) and read_gguf_info(path).pooling_type == "rank":
            return load_reranker(self.ref, runtime=self.runtime, pull=False)
        return load_embedding_model(self.ref, runtime=self.runtime, pull=False)

    @property
    def ready(self) -> bool:
        return self.model is not None

    async def loaded(self) -> EmbeddingModel | RerankModel | GenerationModel:
        """The model once it has loaded (waiting for the load), or the load's error as a 500."""
        await self.settled.wait()
        if self.model is None:
            raise APIError(500, f"cannot load {self.name}: {self.error}")
        return self.model

    async def unload(self) -> None:
        """Fail what still waits, free the model in its own thread, then stop the thread."""
        if self._batcher is not None:
            self._batcher.cancel()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(APIError(503, f"{self.name} was unloaded"))
        model, self.model = self.model, None
        if model is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, model.close)
        self._executor.shutdown(wait=False)

    # -- requests ------------------------------------------------------------------------------------

    async def embedding_model(self) -> EmbeddingModel:
        model = await self.loaded()
        if not isinstance(model, EmbeddingModel):
            raise APIError(400, f"{self.name} is a reranker: use POST /v1/rerank")
        return model

    async def embed(self, request: EmbedRequest) -> tuple[Vectors, int | None]:
        """Vectors for the texts and their token count (None when the runtime cannot count)."""
        await self.embedding_model()
        if not request.texts:
            return [], 0
        future: asyncio.Future[tuple[Vectors, int | None]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(request, future))
        return await future

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        model = await self.loaded()
        if not isinstance(model, RerankModel):
            raise APIError(400, f"{self.name} is an embedding model; /v1/rerank needs a reranker")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, model.rerank, query, documents)

    async def generation_model(self) -> GenerationModel:
        model = await self.loaded()
        if not isinstance(model, GenerationModel):
            raise APIError(400, f"{self.name} does not generate text")
        return model

    async def generate(self, prompt: str, options: SamplingOptions) -> AsyncIterator[GenerationChunk]:
        """Generate in the model's thread, yielding chunks as they come. Leaving the iteration early
        (a client that disconnects) stops the generation at its next token."""
        model = await self.generation_model()
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[GenerationChunk | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                for chunk in model.generator.generate(prompt, options):
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                    if stop.is_set():
                        break
            except BaseException as exc:  # noqa: BLE001 - handed to the request
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        running = loop.run_in_executor(self._executor, work)
        finished = False
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, HanzoError):
                    raise APIError(400, item.message)
                if isinstance(item, BaseException):
                    raise item
                finished = item.finish_reason is not None
                yield item
        finally:
            stop.set()
            running.cancel()  # not started yet (another request holds the thread): never starts
            if not finished:
                log.info("stopped generating with %s: the request ended (client gone)", self.ref)

    async def chat_prompt(self, messages: list[dict[str, str]], template: str | None) -> str:
        model = await self.generation_model()
        try:
            return model.generator.chat_prompt(messages, template)
        except HanzoError as exc:
            raise APIError(400, exc.message) from None

    # -- batching ------------------------------------------------------------------------------------

    async def _run_batches(self) -> None:
        """Forever: take the waiting jobs (after a short window when only one waits), run them as one
        model call per kind of request, and hand each job its share of the vectors."""
        while True:
            jobs = [await self._queue.get()]
            if self._queue.empty():
                await asyncio.sleep(BATCH_WINDOW)
            size = len(jobs[0].request.texts)
            while size < MAX_BATCH_TEXTS and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].request.texts)
            groups: dict[tuple[int | None, bool, bool], list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                await self._run(group)

    async def _run(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        first = jobs[0].request
        texts = [text for job in jobs for text in job.request.texts]
        try:
            vectors, counts = await loop.run_in_executor(
                self._executor, self._embed, texts, first.dimensions, first.normalize, first.truncate
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
            end = start + len(job.request.texts)
            tokens = sum(counts[start:end]) if counts is not None else None
            if not job.future.done():  # the client may have gone
                job.future.set_result((vectors[start:end], tokens))
            start = end

    def _embed(
        self, texts: list[str], dimensions: int | None, normalize: bool, truncate: bool
    ) -> tuple[Vectors, list[int] | None]:
        """In the model's thread: the vectors and each text's token count."""
        model = self.model
        if not isinstance(model, EmbeddingModel):
            raise APIError(503, f"{self.name} was unloaded")
        prepared = [model.prepare(text) for text in texts]
        embedder: Any = model.embedder
        if not truncate:
            _check_lengths(embedder, prepared)
        if normalize:
            size = dimensions if dimensions is not None and dimensions < model.dimensions else None
            vectors = model.embed(texts, dimensions=size)
        else:
            vectors = [list(v) for v in embedder.embed(prepared)]
        # Token counts for the APIs' usage fields, where the runtime exposes its tokenizer.
        tokenize = getattr(embedder, "tokenize", None)
        counts = [len(tokenize(text)) for text in prepared] if callable(tokenize) else None
        return vectors, counts


def _check_lengths(embedder: Any, texts: list[str]) -> None:
    """400 when a text is longer than the model takes (runtimes that can tell: ``count_tokens`` and
    ``max_tokens``); otherwise the runtime truncates, as with ``truncate: true``."""
    count = getattr(embedder, "count_tokens", None)
    limit = getattr(embedder, "max_tokens", None)
    if not callable(count) or not isinstance(limit, int):
        return
    for index, text in enumerate(texts):
        tokens = count(text)
        if tokens > limit:
            raise APIError(
                400,
                f"input {index} is {tokens} tokens, more than the model's context of {limit} tokens "
                "(send truncate: true to cut it)",
            )
