"""The built-in hanzo node: one embedding (or reranker) model served over HTTP with starlette + uvicorn.

``hanzo node:start`` runs it as ``python -m hanzo_cli.node_server --model REF …``; it is never imported
by the CLI itself (starlette and uvicorn are the ``node`` extra). Routes:

- Ollama: ``POST /api/embed``, ``POST /api/embeddings`` (legacy), ``GET /api/tags``, ``GET /api/version``,
  ``GET /``;
- OpenAI: ``POST /v1/embeddings``, ``GET /v1/models``; ``POST /v1/rerank`` (Cohere/Jina body) for rerankers;
- hanzod: ``GET /v2/health_check`` (503 with ``status: error`` until the model has loaded).

The model loads once, at start-up, in a single worker thread that then runs every inference (model
contexts are not thread-safe). Embedding requests that arrive together are batched into one call.
With ``HANZO_NODE_API_KEY`` set, every route but the health check needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import logging
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hanzo_cli import __version__, models
from hanzo_cli.embedding import EmbeddingModel, RerankModel, load_embedding_model, load_reranker
from hanzo_cli.errors import NotFoundError
from hanzo_cli.gguf_info import has_gguf_magic, read_gguf_info
from hanzo_cli.node import API_KEY_ENV, HEALTH_PATH, is_loopback

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = logging.getLogger("hanzo.node")

#: How long the first of several concurrent requests waits for the others to join its batch.
BATCH_WINDOW = 0.002
#: Texts merged into one model call (a single larger request still goes in one call). Kept small so
#: that, under load, one batch runs while the responses of the previous one are encoded and sent.
MAX_BATCH_TEXTS = 32


class APIError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        found = models.find(self.ref)
        if found is None or found.path is None:
            raise NotFoundError(f"model {self.ref!r} is not pulled")
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


# ------------------------------------------------------------------------------------------ request bodies


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    return data


def _texts(value: Any, field_name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise APIError(400, f"{field_name} must be a string or a list of strings")


def _documents(value: Any) -> list[str]:
    """Rerank documents: strings, or Cohere's ``{"text": …}`` objects."""
    if isinstance(value, list):
        texts = [d.get("text") if isinstance(d, dict) else d for d in value]
        if all(isinstance(t, str) for t in texts):
            return [str(t) for t in texts]
    raise APIError(400, "documents must be a list of strings")


def _dimensions(data: dict[str, Any]) -> int | None:
    value = data.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise APIError(400, "dimensions must be an integer")
    return value


def _float32_base64(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# ------------------------------------------------------------------------------------------------ routes


def create_app(host: ModelHost, api_key: str | None) -> ASGIApp:
    """The node's ASGI app (with Bearer-key checking when ``api_key`` is set)."""

    async def root(request: Request) -> Response:
        return PlainTextResponse("hanzo node is running (Ollama- and OpenAI-compatible embedding API)")

    async def version(request: Request) -> Response:
        return JSONResponse({"version": __version__})

    async def health(request: Request) -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "ready": host.ready,
            "version": __version__,
            "model": host.name,
            "node_name": "hanzo",
        }
        if not host.ready:
            body.update(status="error", error=host.error or "the model is still loading")
            return JSONResponse(body, 503)
        return JSONResponse(body)

    async def ollama_embed(request: Request) -> Response:
        started = time.perf_counter_ns()
        data = await _body(request)
        host.check_name(data.get("model"))
        raw = data.get("input", [])
        texts = [] if raw == "" else _texts(raw, "input")  # Ollama answers "" with no embeddings
        if not isinstance(data.get("truncate", True), bool):
            raise APIError(400, "truncate must be true or false")
        vectors, tokens = await host.embed(texts, _dimensions(data))
        body: dict[str, Any] = {
            "model": data.get("model") or host.name,
            "embeddings": vectors,
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": 0,
        }
        if tokens is not None:
            body["prompt_eval_count"] = tokens
        return JSONResponse(body)

    async def ollama_embeddings(request: Request) -> Response:
        data = await _body(request)
        host.check_name(data.get("model"))
        prompt = data.get("prompt", "")
        if not isinstance(prompt, str):
            raise APIError(400, "prompt must be a string")
        vectors, _ = await host.embed([prompt] if prompt else [], None)
        return JSONResponse({"embedding": vectors[0] if vectors else []})

    async def ollama_tags(request: Request) -> Response:
        return JSONResponse({"models": [_ollama_model(host)] if host.model is not None else []})

    async def openai_models(request: Request) -> Response:
        created = (
            int(host.model.info.modified_at.timestamp()) if host.model and host.model.info.modified_at else 0
        )
        model = {"id": host.name, "object": "model", "created": created, "owned_by": "hanzo"}
        return JSONResponse({"object": "list", "data": [model]})

    async def openai_embeddings(request: Request) -> Response:
        data = await _body(request)
        host.check_name(data.get("model"))
        texts = _texts(data.get("input"), "input")
        if not texts:
            raise APIError(400, "input must not be empty")
        encoding = data.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise APIError(400, "encoding_format must be float or base64")
        vectors, tokens = await host.embed(texts, _dimensions(data))
        encode: Callable[[list[float]], Any] = _float32_base64 if encoding == "base64" else list
        items = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": tokens or 0, "total_tokens": tokens or 0}
        return JSONResponse(
            {"object": "list", "data": items, "model": data.get("model") or host.name, "usage": usage}
        )

    async def rerank(request: Request) -> Response:
        data = await _body(request)
        host.check_name(data.get("model"))
        query = data.get("query")
        if not isinstance(query, str):
            raise APIError(400, "query must be a string")
        documents = _documents(data.get("documents"))
        top_n = data.get("top_n")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise APIError(400, "top_n must be a positive integer")
        return_documents = data.get("return_documents", False)
        scores = await host.rerank(query, documents) if documents else []
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[:top_n]
        results: list[dict[str, Any]] = []
        for i in order:
            result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if return_documents:
                result["document"] = {"text": documents[i]}
            results.append(result)
        return JSONResponse({"model": data.get("model") or host.name, "results": results})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return JSONResponse({"error": exc.message}, exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"internal error: {getattr(exc, 'message', None) or exc}"}, 500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(host.load()), asyncio.create_task(host.run_batches())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            host.fail_waiting()
            host.close()

    routes = [
        Route("/", root),
        Route("/api/version", version),
        Route("/api/tags", ollama_tags),
        Route("/api/embed", ollama_embed, methods=["POST"]),
        Route("/api/embeddings", ollama_embeddings, methods=["POST"]),
        Route("/v1/models", openai_models),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/v1/rerank", rerank, methods=["POST"]),
        Route(HEALTH_PATH, health),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={APIError: api_error, HTTPException: http_error, Exception: server_error},
    )
    return BearerAuth(app, api_key) if api_key else app


def _ollama_model(host: ModelHost) -> dict[str, Any]:
    assert host.model is not None
    info, gguf = host.model.info, host.model.gguf
    return {
        "name": host.name,
        "model": host.name,
        "modified_at": info.modified_at.isoformat() if info.modified_at else None,
        "size": info.size,
        "digest": (info.digest or "").removeprefix("sha256:"),
        "details": {
            "format": "gguf",
            "family": gguf.architecture or "",
            "families": [gguf.architecture] if gguf.architecture else None,
            "parameter_size": _parameter_size(gguf.parameter_count),
            "quantization_level": gguf.file_type or "",
        },
    }


def _parameter_size(count: int | None) -> str:
    """Ollama's spelling of a parameter count: 22.57M, 7.6B."""
    if not count:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}".rstrip("0").rstrip(".") + unit
    return str(count)


class BearerAuth:
    """ASGI middleware: every HTTP route but the health check needs ``Authorization: Bearer KEY``."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != HEALTH_PATH and not self._authorized(scope):
            response = JSONResponse(
                {"error": "missing or wrong API key (send Authorization: Bearer KEY)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False


# -------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hanzo_cli.node_server",
        description=f"The built-in hanzo node (started by hanzo node:start). API key: ${API_KEY_ENV}.",
    )
    parser.add_argument("--model", required=True, help="pulled model to serve: [provider:]name")
    parser.add_argument("--name", help="name the APIs report (default: --model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9452)
    parser.add_argument("--runtime", help="runtime to load the model with")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api_key = os.environ.get(API_KEY_ENV) or None
    if not is_loopback(args.host) and not api_key:
        print(f"Error: binding {args.host} needs an API key in {API_KEY_ENV}", file=sys.stderr)
        return 2
    host = ModelHost(ref=args.model, name=args.name or args.model, runtime=args.runtime)
    config = uvicorn.Config(
        create_app(host, api_key),
        host=args.host,
        port=args.port,
        log_config=None,  # the root logger above: timestamps in the node's log
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    host.on_fatal = stop
    server.run()
    return 1 if host.error else 0


if __name__ == "__main__":
    sys.exit(main())
