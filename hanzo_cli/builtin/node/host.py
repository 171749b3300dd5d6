"""One model the built-in node serves, run by a worker process of its own (:mod:`~.worker`).

A worker that dies (a native abort, an out-of-memory kill) fails only the requests it held, with a
500 that says how it died; the node logs it (``hanzo node:logs``) and the pool starts a new worker on
the next request. Requests for different models run in different processes, side by side; a
worker takes its requests one at a time, and embedding requests that arrive together are merged
into one call. Requests that come while the model loads wait for it (as Ollama's do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from hanzo_cli.api import GenerationChunk, GGUFInfo, ModelInfo, SamplingOptions
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import (
    BATCH_WINDOW,
    EMBED_OMP_SPIN,
    MAX_BATCH_TEXTS,
    STOP_TIMEOUT,
)
from hanzo_cli.builtin.node.describe import gguf_of
from hanzo_cli.builtin.node.worker import HEADER

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("hanzo.node")

#: A request's vectors: float32, one row per text, as the worker sent them (never Python floats).
Vectors: TypeAlias = "np.ndarray"
WORKER_MODULE = "hanzo_cli.builtin.node.worker"


@dataclass(frozen=True)
class EmbedRequest:
    """What one embedding request asks of the model."""

    texts: list[str]
    dimensions: int | None = None  # None or >= the native size: the whole vector (as Ollama)
    normalize: bool = True  # False: the runtime's pooled vector as it is (Ollama's legacy route)
    truncate: bool = True  # False: an input longer than the model's context is a 400


@dataclass(frozen=True)
class ModelFacts:
    """What the worker says it loaded."""

    kind: str  # embedding, reranker or generator
    runtime: str
    dimensions: int | None = None
    chat_template: bool = False


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
    #: Generations the worker decodes at once.
    parallel: int = 1
    facts: ModelFacts | None = None
    gguf: GGUFInfo | None = None
    error: str | None = None  # why the load failed
    dead: str | None = None  # how the worker died
    pid: int | None = None
    loaded_at: float = 0.0  # time.time()
    last_used: float = field(default_factory=time.monotonic)
    #: When an idle model unloads (time.monotonic()), None for never.
    expires: float | None = None
    active: int = 0  # requests in progress
    #: Set once the load has ended, loaded or failed.
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    _process: asyncio.subprocess.Process | None = None
    _pending: dict[int, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 1
    _closing: bool = False
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)  # the reader, the batcher
    _loader: asyncio.Task[None] | None = None

    @property
    def ref(self) -> str:
        return f"{self.info.provider}:{self.info.name}"

    @property
    def key(self) -> str:
        """The pool's key: one model may be loaded once to embed and once to generate."""
        return self.ref if self.role == "embed" else f"{self.ref}#{self.role}"

    @property
    def ready(self) -> bool:
        return self.facts is not None and self.dead is None and not self._closing

    # -- the worker ----------------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load in the background (the host keeps the task: a task nobody holds may be collected)."""
        self._loader = asyncio.create_task(self.load())

    async def load(self) -> None:
        """Start the worker and wait for its model; afterwards :attr:`facts` or :attr:`error` is set."""
        started = time.monotonic()
        log.info("loading %s", self.ref)
        try:
            self.gguf = await asyncio.to_thread(gguf_of, self.info)
            hello: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            self._pending[0] = hello
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                WORKER_MODULE,
                self.ref,
                self.role,
                self.runtime or "",
                str(self.parallel),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # stderr: inherited, the node's log
                env=worker_environment(self.role),
            )
            self.pid = self._process.pid
            self._tasks.append(asyncio.create_task(self._read()))
            first = await hello.get()
            self._pending.pop(0, None)
            if "ready" not in first:
                raise APIError(500, first.get("error") or first.get("died") or "the worker failed")
            self.facts = ModelFacts(**first["ready"])
        except (APIError, OSError) as exc:
            self.error = exc.message if isinstance(exc, APIError) else str(exc)
            log.error("cannot load %s: %s", self.ref, self.error)
        else:
            self.loaded_at = time.time()
            self._tasks.append(asyncio.create_task(self._run_batches()))
            elapsed = time.monotonic() - started
            log.info(
                "loaded %s (%s, runtime %s, worker pid %s) in %.1f s",
                self.ref,
                self.facts.kind,
                self.facts.runtime,
                self.pid,
                elapsed,
            )
        finally:
            self.settled.set()

    async def _read(self) -> None:
        """Hand each frame from the worker to the request it answers; when the worker ends, fail
        every request still waiting with how it died."""
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        while True:
            try:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                frame = pickle.loads(await stdout.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            waiting = self._pending.get(frame["id"])
            if waiting is not None:
                waiting.put_nowait(frame)
        code = await self._process.wait()
        if not self._closing:
            self.dead = _death(code)
            log.error("the worker for %s (pid %s) died: %s", self.ref, self.pid, self.dead)
        for waiting in self._pending.values():
            waiting.put_nowait({"died": self.dead or "it was stopped"})

    def _open(self) -> tuple[int, asyncio.Queue[dict[str, Any]]]:
        if not self.ready:
            raise APIError(500, self._gone())
        ident, self._next_id = self._next_id, self._next_id + 1
        waiting: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending[ident] = waiting
        return ident, waiting

    async def _send(self, frame: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            raise APIError(500, self._gone())
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(HEADER.pack(len(data)) + data)
            await process.stdin.drain()
        except (ConnectionError, RuntimeError):
            raise APIError(500, self._gone()) from None

    def _answer(self, frame: dict[str, Any]) -> Any:
        if "ok" in frame:
            return frame["ok"]
        if "died" in frame:
            raise APIError(500, self._gone())
        raise APIError(int(frame.get("status") or 500), str(frame.get("error")))

    def _gone(self) -> str:
        if self.dead:
            return f"the worker running {self.name} died ({self.dead}); the next request starts a new one"
        return f"{self.name} was unloaded"

    async def _call(self, op: str, **args: Any) -> Any:
        ident, waiting = self._open()
        try:
            await self._send({"id": ident, "op": op, "args": args})
            return self._answer(await waiting.get())
        finally:
            self._pending.pop(ident, None)

    async def unload(self) -> None:
        """Fail what still waits and stop the worker (closing its stdin ends it; then signals)."""
        self._closing = True
        for task in self._tasks[1:]:  # the reader ends with the worker
            task.cancel()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(APIError(503, f"{self.name} was unloaded"))
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    # -- requests ------------------------------------------------------------------------------------

    async def loaded(self) -> ModelFacts:
        """The model's facts once it has loaded (waiting for the load), or a 500 saying why not."""
        await self.settled.wait()
        if self.facts is None:
            raise APIError(500, f"cannot load {self.name}: {self.error}")
        if not self.ready:
            raise APIError(500, self._gone())
        return self.facts

    async def embed(self, request: EmbedRequest) -> tuple[Vectors, int | None]:
        """Vectors for the texts and their token count (None when the runtime cannot count)."""
        facts = await self.loaded()
        if facts.kind != "embedding":
            raise APIError(400, f"{self.name} is a reranker: use POST /v1/rerank")
        if not request.texts:
            import numpy as np

            return np.empty((0, facts.dimensions or 0), dtype=np.float32), 0
        future: asyncio.Future[tuple[Vectors, int | None]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(request, future))
        return await future

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        facts = await self.loaded()
        if facts.kind != "reranker":
            raise APIError(400, f"{self.name} is an embedding model; /v1/rerank needs a reranker")
        scores: list[float] = await self._call("rerank", query=query, documents=documents)
        return scores

    async def generation_model(self) -> ModelFacts:
        facts = await self.loaded()
        if facts.kind != "generator":
            raise APIError(400, f"{self.name} does not generate text")
        return facts

    async def chat_prompt(self, messages: list[dict[str, str]], template: str | None) -> str:
        await self.generation_model()
        prompt: str = await self._call("chat_prompt", messages=messages, template=template)
        return prompt

    async def generate(self, prompt: str, options: SamplingOptions) -> AsyncIterator[GenerationChunk]:
        """The generated chunks as the worker sends them. Leaving the iteration early (a client that
        disconnects) tells the worker to stop at its next token."""
        await self.generation_model()
        ident, waiting = self._open()
        finished = False
        try:
            await self._send({"id": ident, "op": "generate", "prompt": prompt, "options": options})
            while True:
                frame = await waiting.get()
                if "chunk" not in frame:
                    self._answer(frame)
                    return
                chunk: GenerationChunk = frame["chunk"]
                finished = chunk.finish_reason is not None
                yield chunk
                if finished:
                    return
        finally:
            self._pending.pop(ident, None)
            if not finished and self.ready:
                log.info("stopped generating with %s: the request ended (client gone)", self.ref)
                with contextlib.suppress(APIError):
                    await self._send({"op": "cancel", "target": ident})

    # -- batching ------------------------------------------------------------------------------------

    async def _run_batches(self) -> None:
        """Forever: take the waiting jobs (after a short window when only one waits), run them as one
        model call per kind of request, and hand each job its share of the vectors. (Sending the next
        batch before the last is answered measured no faster: the worker is idle only for the pipe's
        round trip.)"""
        while True:
            jobs = [await self._queue.get()]
            if self._queue.empty():
                try:
                    await asyncio.sleep(BATCH_WINDOW)
                except asyncio.CancelledError:  # unloading: the job taken must not wait forever
                    if not jobs[0].future.done():
                        jobs[0].future.set_exception(APIError(503, f"{self.name} was unloaded"))
                    raise
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
        first = jobs[0].request
        texts = [text for job in jobs for text in job.request.texts]
        try:
            vectors, counts = await self._call(
                "embed",
                texts=texts,
                dimensions=first.dimensions,
                normalize=first.normalize,
                truncate=first.truncate,
            )
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) that caused it
            if len(jobs) > 1 and not self.dead:  # one bad request must not fail the others batched with it
                for job in jobs:
                    await self._run([job])
                return
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.request.texts)
            tokens = sum(counts[start:end]) if counts is not None else None
            if not job.future.done():  # the client may have gone
                job.future.set_result((vectors[start:end], tokens))
            start = end


def worker_environment(role: str) -> dict[str, str]:
    """The node's environment, plus a short OpenMP spin for embedding workers (unless the user set
    one): llama.cpp's threads meet at a barrier after every operation, and libgomp's default spin
    there (~300k iterations, milliseconds) wastes the CPU that the node, its clients or the machine's
    other work need; when one thread is then descheduled the other spins on, and throughput on a
    busy 2-core machine fell from ~650 to under 20 texts/s. A short spin is as fast on an idle one."""
    env = dict(os.environ)
    if role == "embed" and "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = str(EMBED_OMP_SPIN)
    return env


def _death(code: int) -> str:
    """How a worker ended, for the 500 and the log."""
    if code < 0:
        name = signal.Signals(-code).name
        if name == "SIGKILL":
            return "killed by SIGKILL: out of memory, or killed by hand"
        if name == "SIGABRT":
            return "aborted by a native error in the runtime; hanzo node:logs shows it"
        return f"killed by {name}"
    return f"exited with code {code}"
