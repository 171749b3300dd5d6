"""The built-in node's ASGI app: its routes, errors, request limits, Bearer-key checking and lifespan.

Routes:

- Ollama: ``POST /api/embed``, ``POST /api/embeddings`` (legacy), ``POST /api/generate``, ``POST /api/chat``,
  ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``, ``GET /api/version``, ``GET /``;
- OpenAI: ``POST /v1/embeddings``, ``POST /v1/completions``, ``POST /v1/chat/completions``,
  ``GET /v1/models``;
  ``POST /v1/rerank`` (Cohere/Jina body) for rerankers;
- hanzod: ``GET /v2/health_check`` (503 with ``status: error`` until the models named at start have loaded).

Errors are ``{"error": "message"}`` on Ollama's routes (as Ollama answers) and OpenAI's error object
``{"error": {"message", "type", "param", "code"}}`` on every ``/v1`` route, middleware's included.
A body over the size limit gets 413. With an API key, every route but the health check needs
``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hanzo_cli.api import __version__
from hanzo_cli.builtin.node import generate_routes, ollama_routes, openai_routes
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import HEALTH_PATH, MAX_BODY_BYTES, MAX_INPUTS, OLLAMA_API_VERSION
from hanzo_cli.builtin.node.pool import ModelPool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

log = logging.getLogger("hanzo.node")

#: A body over the limit is still read (and dropped) up to this much more, so that the client sees the
#: 413 rather than a connection reset in the middle of its upload.
DRAIN_BYTES = 64 * 1024 * 1024


def error_response(
    path: str, status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error in the shape the route's API uses: OpenAI's object under ``/v1``, else Ollama's."""
    if not path.startswith("/v1/"):
        return JSONResponse({"error": message}, status, headers=headers)
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error"}.get(
        status, "invalid_request_error" if status < 500 else "api_error"
    )
    code = {401: "invalid_api_key", 404: "model_not_found" if param == "model" else None}.get(status)
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


def create_app(
    pool: ModelPool, api_key: str | None, max_body: int = MAX_BODY_BYTES, max_inputs: int = MAX_INPUTS
) -> ASGIApp:
    """The node's ASGI app (with Bearer-key checking when ``api_key`` is set)."""

    async def root(request: Request) -> Response:
        return PlainTextResponse("hanzo node is running (Ollama- and OpenAI-compatible API)")

    async def version(request: Request) -> Response:
        # Clients gate features on Ollama's version; hanzo's own is in the health check.
        return JSONResponse({"version": OLLAMA_API_VERSION})

    async def health(request: Request) -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "ready": pool.ready,
            "version": __version__,
            "model": pool.default_name,
            "models": [name for _, name in pool.preload],
            "node_name": "hanzo",
        }
        if not pool.ready:
            body.update(status="error", error=pool.error or "the model is still loading")
            return JSONResponse(body, 503)
        return JSONResponse(body)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return error_response(request.url.path, exc.status, exc.message, exc.param)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(request.url.path, exc.status_code, exc.detail, headers=dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        message = f"internal error: {getattr(exc, 'message', None) or exc}"
        return error_response(request.url.path, 500, message)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(pool.start()), asyncio.create_task(pool.reap())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await pool.close()

    app = Starlette(
        routes=[
            Route("/", root),
            Route("/api/version", version),
            Route("/api/tags", ollama_routes.tags),
            Route("/api/show", ollama_routes.show, methods=["POST"]),
            Route("/api/ps", ollama_routes.ps),
            Route("/api/embed", ollama_routes.embed, methods=["POST"]),
            Route("/api/embeddings", ollama_routes.embeddings, methods=["POST"]),
            Route("/api/generate", generate_routes.ollama_generate, methods=["POST"]),
            Route("/api/chat", generate_routes.ollama_chat, methods=["POST"]),
            Route("/v1/completions", generate_routes.openai_completions, methods=["POST"]),
            Route("/v1/chat/completions", generate_routes.openai_chat, methods=["POST"]),
            Route("/v1/models", openai_routes.models),
            Route("/v1/embeddings", openai_routes.embeddings, methods=["POST"]),
            Route("/v1/rerank", openai_routes.rerank, methods=["POST"]),
            Route(HEALTH_PATH, health),
        ],
        lifespan=lifespan,
        exception_handlers={APIError: api_error, HTTPException: http_error, Exception: server_error},
    )
    app.state.pool = pool
    app.state.max_inputs = max_inputs
    limited = BodyLimit(app, max_body)
    return BearerAuth(limited, api_key) if api_key else limited


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, before any route reads it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.limit:
                while more and size <= self.limit + DRAIN_BYTES:
                    message = await receive()
                    size += len(message.get("body", b""))
                    more = message.get("more_body", False) and message["type"] != "http.disconnect"
                mib = self.limit / (1024 * 1024)
                response = error_response(
                    scope["path"], 413, f"the request body is larger than the node's limit of {mib:g} MiB"
                )
                await response(scope, receive, send)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect

        await self.app(scope, replay, send)


class BearerAuth:
    """ASGI middleware: every HTTP route but the health check needs ``Authorization: Bearer KEY``."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != HEALTH_PATH and not self._authorized(scope):
            response = error_response(
                scope["path"],
                401,
                "missing or wrong API key (send Authorization: Bearer KEY)",
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
