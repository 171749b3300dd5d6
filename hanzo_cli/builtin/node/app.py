"""The built-in node's ASGI app: its routes, JSON errors, Bearer-key checking and lifespan.

Routes:

- Ollama: ``POST /api/embed``, ``POST /api/embeddings`` (legacy), ``GET /api/tags``, ``GET /api/version``,
  ``GET /``;
- OpenAI: ``POST /v1/embeddings``, ``GET /v1/models``; ``POST /v1/rerank`` (Cohere/Jina body) for rerankers;
- hanzod: ``GET /v2/health_check`` (503 with ``status: error`` until the model has loaded).

With an API key, every route but the health check needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import asyncio
import hmac
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hanzo_cli.api import __version__
from hanzo_cli.builtin.node import routes
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import HEALTH_PATH
from hanzo_cli.builtin.node.host import ModelHost

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


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

    app = Starlette(
        routes=[
            Route("/", root),
            Route("/api/version", version),
            Route("/api/tags", routes.ollama_tags),
            Route("/api/embed", routes.ollama_embed, methods=["POST"]),
            Route("/api/embeddings", routes.ollama_embeddings, methods=["POST"]),
            Route("/v1/models", routes.openai_models),
            Route("/v1/embeddings", routes.openai_embeddings, methods=["POST"]),
            Route("/v1/rerank", routes.rerank, methods=["POST"]),
            Route(HEALTH_PATH, health),
        ],
        lifespan=lifespan,
        exception_handlers={APIError: api_error, HTTPException: http_error, Exception: server_error},
    )
    app.state.host = host
    return BearerAuth(app, api_key) if api_key else app


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
