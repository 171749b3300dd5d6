"""OpenAI's API on the built-in node: ``/v1/embeddings``, ``/v1/models``; and ``/v1/rerank`` (Cohere's
and Jina's body) for rerankers. Errors on these routes are OpenAI's error object (see :mod:`~.app`)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hanzo_cli.builtin.node import describe
from hanzo_cli.builtin.node.bodies import (
    APIError,
    VectorsResponse,
    dimensions_field,
    documents_field,
    float32_base64,
    model_field,
    read_body,
    texts_field,
)
from hanzo_cli.builtin.node.host import EmbedRequest
from hanzo_cli.builtin.node.ollama_routes import keep_alive_field, local_models, max_inputs, pool_of


async def models(request: Request) -> Response:
    pool = pool_of(request)
    found = await asyncio.to_thread(local_models)
    data = [describe.openai_model(pool.display_name(info), info) for info in found]
    return JSONResponse({"object": "list", "data": data})


async def embeddings(request: Request) -> Response:
    data = await read_body(request)
    texts = texts_field(data.get("input"), "input", max_inputs(request))
    if not texts:
        raise APIError(400, "input must not be empty", "input")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise APIError(400, "encoding_format must be float or base64", "encoding_format")
    embed_request = EmbedRequest(texts, dimensions_field(data))
    requested = model_field(data)
    async with pool_of(request).use(requested, keep_alive_field(data)) as host:
        vectors, tokens = await host.embed(embed_request)
    packed = encoding == "base64"
    items = [
        {"object": "embedding", "index": i, "embedding": float32_base64(v) if packed else v}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens or 0, "total_tokens": tokens or 0}
    model = requested or host.name
    return VectorsResponse({"object": "list", "data": items, "model": model, "usage": usage})


async def rerank(request: Request) -> Response:
    data = await read_body(request)
    query = data.get("query")
    if not isinstance(query, str):
        raise APIError(400, "query must be a string", "query")
    documents = documents_field(data.get("documents"), max_inputs(request))
    top_n = data.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise APIError(400, "top_n must be a positive integer", "top_n")
    return_documents = data.get("return_documents", False)
    requested = model_field(data)
    async with pool_of(request).use(requested, keep_alive_field(data)) as host:
        scores = await host.rerank(query, documents) if documents else []
        if not documents:
            await host.loaded()
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[:top_n]
    results: list[dict[str, Any]] = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if return_documents:
            result["document"] = {"text": documents[i]}
        results.append(result)
    return JSONResponse({"model": requested or host.name, "results": results})
