"""Ollama's API on the built-in node: ``/api/embed``, ``/api/embeddings`` (legacy), ``/api/tags``,
``/api/show``, ``/api/ps``, in the shapes ``ollama serve`` answers with."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hanzo_cli.api import HanzoError, ModelInfo
from hanzo_cli.builtin.node import describe
from hanzo_cli.builtin.node.bodies import (
    APIError,
    VectorsResponse,
    dimensions_field,
    keep_alive_seconds,
    model_field,
    read_body,
    texts_field,
    truncate_field,
)
from hanzo_cli.builtin.node.host import EmbedRequest
from hanzo_cli.builtin.node.pool import KeepAlive, ModelPool


def pool_of(request: Request) -> ModelPool:
    pool: ModelPool = request.app.state.pool
    return pool


def max_inputs(request: Request) -> int:
    limit: int = request.app.state.max_inputs
    return limit


def keep_alive_field(data: dict[str, Any]) -> KeepAlive | None:
    value = data.get("keep_alive")
    return None if value is None else KeepAlive(keep_alive_seconds(value))


async def embed(request: Request) -> Response:
    started = time.perf_counter_ns()
    data = await read_body(request)
    raw = data.get("input", [])
    texts = [] if raw == "" else texts_field(raw, "input", max_inputs(request))  # "" embeds nothing
    embed_request = EmbedRequest(texts, dimensions_field(data), truncate=truncate_field(data))
    requested = model_field(data)
    async with pool_of(request).use(requested, keep_alive_field(data)) as host:
        await host.loaded()
        loaded = time.perf_counter_ns()
        vectors, tokens = await host.embed(embed_request)
    body: dict[str, Any] = {
        "model": requested or host.name,
        "embeddings": vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": loaded - started,
    }
    if tokens is not None:
        body["prompt_eval_count"] = tokens
    return VectorsResponse(body)


async def embeddings(request: Request) -> Response:
    """The legacy route: one prompt, its vector as the model gives it (not normalised, as Ollama)."""
    data = await read_body(request)
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise APIError(400, "prompt must be a string")
    async with pool_of(request).use(model_field(data), keep_alive_field(data)) as host:
        vectors, _ = await host.embed(EmbedRequest([prompt] if prompt else [], normalize=False))
    return VectorsResponse({"embedding": vectors[0] if len(vectors) else []})


async def tags(request: Request) -> Response:
    pool = pool_of(request)
    found = await asyncio.to_thread(local_models)
    entries = await asyncio.to_thread(
        lambda: [describe.tags_entry(pool.display_name(i), i, describe.gguf_of(i)) for i in found]
    )
    return JSONResponse({"models": entries})


async def show(request: Request) -> Response:
    data = await read_body(request)
    requested = model_field(data) or (data.get("name") if isinstance(data.get("name"), str) else None)
    if not requested:
        raise APIError(400, "model is required")
    info = await pool_of(request).resolve(requested)
    body = await asyncio.to_thread(lambda: describe.show(info, describe.gguf_of(info)))
    return JSONResponse(body)


async def ps(request: Request) -> Response:
    now = time.monotonic()
    entries = []
    for host in list(pool_of(request).hosts.values()):
        if not host.ready:
            continue
        expires_in = None if host.expires is None else host.expires - now
        if host.active:  # busy: it expires keep_alive after the request ends
            expires_in = None if host.keep_alive is None else host.keep_alive
        entries.append(describe.ps_entry(host.name, host.info, host.gguf, expires_in))
    return JSONResponse({"models": entries})


def local_models() -> list[ModelInfo]:
    """Every model on disk that any provider has, first provider first."""
    from hanzo_cli.plugins import registry  # the provider list is not public API yet

    found: list[ModelInfo] = []
    for provider in registry().providers.values():
        try:
            found.extend(info for info in provider.list() if info.path is not None)
        except HanzoError:
            continue  # one provider's broken store must not hide the others' models
    return found
