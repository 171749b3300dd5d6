"""The built-in node's model routes: Ollama's and OpenAI's embedding APIs and Cohere/Jina reranking.

Each handler finds the served model in ``request.app.state.host`` (a :class:`ModelHost`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hanzo_cli.builtin.node.bodies import (
    APIError,
    dimensions_field,
    documents_field,
    float32_base64,
    read_body,
    texts_field,
)
from hanzo_cli.builtin.node.host import ModelHost


def _host(request: Request) -> ModelHost:
    host: ModelHost = request.app.state.host
    return host


async def ollama_embed(request: Request) -> Response:
    started = time.perf_counter_ns()
    host = _host(request)
    data = await read_body(request)
    host.check_name(data.get("model"))
    raw = data.get("input", [])
    texts = [] if raw == "" else texts_field(raw, "input")  # Ollama answers "" with no embeddings
    if not isinstance(data.get("truncate", True), bool):
        raise APIError(400, "truncate must be true or false")
    vectors, tokens = await host.embed(texts, dimensions_field(data))
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
    host = _host(request)
    data = await read_body(request)
    host.check_name(data.get("model"))
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise APIError(400, "prompt must be a string")
    vectors, _ = await host.embed([prompt] if prompt else [], None)
    return JSONResponse({"embedding": vectors[0] if vectors else []})


async def ollama_tags(request: Request) -> Response:
    host = _host(request)
    return JSONResponse({"models": [_ollama_model(host)] if host.model is not None else []})


async def openai_models(request: Request) -> Response:
    host = _host(request)
    modified = host.model.info.modified_at if host.model else None
    created = int(modified.timestamp()) if modified else 0
    model = {"id": host.name, "object": "model", "created": created, "owned_by": "hanzo"}
    return JSONResponse({"object": "list", "data": [model]})


async def openai_embeddings(request: Request) -> Response:
    host = _host(request)
    data = await read_body(request)
    host.check_name(data.get("model"))
    texts = texts_field(data.get("input"), "input")
    if not texts:
        raise APIError(400, "input must not be empty")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise APIError(400, "encoding_format must be float or base64")
    vectors, tokens = await host.embed(texts, dimensions_field(data))
    encode: Callable[[list[float]], Any] = float32_base64 if encoding == "base64" else list
    items = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": tokens or 0, "total_tokens": tokens or 0}
    model = data.get("model") or host.name
    return JSONResponse({"object": "list", "data": items, "model": model, "usage": usage})


async def rerank(request: Request) -> Response:
    host = _host(request)
    data = await read_body(request)
    host.check_name(data.get("model"))
    query = data.get("query")
    if not isinstance(query, str):
        raise APIError(400, "query must be a string")
    documents = documents_field(data.get("documents"))
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
