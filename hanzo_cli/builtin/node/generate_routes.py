"""Text generation on the built-in node: Ollama's ``/api/generate`` and ``/api/chat`` (NDJSON stream,
or one object with ``stream: false``) and OpenAI's ``/v1/completions`` and ``/v1/chat/completions``
(server-sent events, or one object; ``usage`` filled).

Ollama applies a model's chat template in ``/api/generate`` unless ``raw`` is true; a model without
one (a base model) completes the prompt as it is. Chat needs a template: the model's, or one given
as ``template`` (Ollama's routes) or ``chat_template`` (OpenAI's), a Jinja chat template; without
either, 400. A client that disconnects mid-stream stops its generation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hanzo_cli.api import GenerationChunk, SamplingOptions
from hanzo_cli.builtin.node.bodies import APIError, model_field, read_body
from hanzo_cli.builtin.node.host import ModelHost
from hanzo_cli.builtin.node.ollama_routes import keep_alive_field, pool_of

# Ollama's sampling defaults (api.DefaultOptions), and OpenAI's (which Ollama's /v1 routes use).
OLLAMA_DEFAULTS = {"temperature": 0.8, "top_p": 0.9, "top_k": 40}
OPENAI_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}


@dataclass
class Outcome:
    """What a generation produced, for the final message."""

    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: int = 0  # perf_counter_ns at the request
    loaded: int = 0  # perf_counter_ns once the model was ready
    first: int = 0  # perf_counter_ns of the first generated text


# -------------------------------------------------------------------------------------------- options


def _number(data: dict[str, Any], name: str, kind: type, low: float | None = None) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and not isinstance(value, int))
    ):
        raise APIError(400, f"{name} must be {'an integer' if kind is int else 'a number'}", name)
    if low is not None and value < low:
        raise APIError(400, f"{name} must be at least {low:g}", name)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise APIError(400, "stop must be a string or a list of strings", "stop")


def sampling(values: dict[str, Any], defaults: dict[str, float], max_tokens_key: str) -> SamplingOptions:
    """Sampling options from Ollama's ``options`` or an OpenAI body; ``num_predict`` < 0: no limit."""
    max_tokens = _number(values, max_tokens_key, int)
    if max_tokens is not None and max_tokens < 0:
        max_tokens = None
    elif max_tokens == 0:
        raise APIError(400, f"{max_tokens_key} must be positive", max_tokens_key)
    temperature = _number(values, "temperature", float, 0)
    top_p = _number(values, "top_p", float, 0)
    top_k = _number(values, "top_k", int, 0)
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=defaults.get("temperature") if temperature is None else float(temperature),
        top_p=defaults.get("top_p") if top_p is None else float(top_p),
        top_k=int(defaults["top_k"]) if top_k is None and "top_k" in defaults else top_k,
        seed=_number(values, "seed", int),
        stop=_stop(values.get("stop")),
    )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise APIError(400, "messages must be a non-empty list", "messages")
    messages = []
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise APIError(400, "each message needs a role and a content", "messages")
        content = message.get("content", "")
        if isinstance(content, list):  # OpenAI's content parts: the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise APIError(400, "a message's content must be text", "messages")
        messages.append({"role": message["role"], "content": content})
    return messages


def _template(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise APIError(400, f"{key} must be a string", key)
    return value or None


# -------------------------------------------------------------------------------------------- running


async def _run(
    host: ModelHost, prompt: str, options: SamplingOptions, outcome: Outcome
) -> AsyncIterator[str]:
    """The generated text piece by piece; ``outcome`` is complete once the iteration ends."""
    async for chunk in host.generate(prompt, options):
        if chunk.text:
            if not outcome.first:
                outcome.first = time.perf_counter_ns()
            outcome.text += chunk.text
            yield chunk.text
        if chunk.finish_reason is not None:
            _finish(outcome, chunk)


def _finish(outcome: Outcome, chunk: GenerationChunk) -> None:
    outcome.finish_reason = chunk.finish_reason or "stop"
    outcome.prompt_tokens = chunk.prompt_tokens
    outcome.completion_tokens = chunk.completion_tokens


async def _first_then_rest(pieces: AsyncIterator[str]) -> tuple[list[str], AsyncIterator[str]]:
    """Start the generation before answering, so that a bad prompt is a 4xx and not a broken stream."""
    head: list[str] = []
    try:
        head.append(await anext(pieces))
    except StopAsyncIteration:
        pass
    return head, pieces


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _ollama_final(model: str, outcome: Outcome, extra: dict[str, Any]) -> dict[str, Any]:
    end = time.perf_counter_ns()
    first = outcome.first or end
    return {
        "model": model,
        "created_at": _now(),
        **extra,
        "done": True,
        "done_reason": outcome.finish_reason,
        "total_duration": end - outcome.started,
        "load_duration": outcome.loaded - outcome.started,
        "prompt_eval_count": outcome.prompt_tokens,
        "prompt_eval_duration": first - outcome.loaded,
        "eval_count": outcome.completion_tokens,
        "eval_duration": end - first,
    }


async def _ollama_answer(
    request: Request,
    data: dict[str, Any],
    prompt_of: Callable[[ModelHost], Any],
    piece: Callable[[str], dict[str, Any]],
    whole: Callable[[str], dict[str, Any]],
) -> Response:
    """The common part of /api/generate and /api/chat."""
    outcome = Outcome(started=time.perf_counter_ns())
    options = sampling(_options(data), OLLAMA_DEFAULTS, "num_predict")
    requested = model_field(data)
    if requested is None:
        raise APIError(400, "model is required")
    stream = data.get("stream", True) is not False
    use = pool_of(request).use(requested, keep_alive_field(data), role="generate")
    host = await use.__aenter__()
    try:
        await host.generation_model()
        outcome.loaded = time.perf_counter_ns()
        prompt = await prompt_of(host)
        if prompt is None:  # nothing to generate: the request only loads (or unloads) the model
            await use.__aexit__(None, None, None)
            reason = "unload" if host.keep_alive == 0 else "load"
            return JSONResponse(
                {"model": requested, "created_at": _now(), **whole(""), "done": True, "done_reason": reason}
            )
        head, rest = await _first_then_rest(_run(host, prompt, options, outcome))
    except BaseException as exc:
        await use.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    if not stream:
        try:
            async for _ in rest:
                pass
        finally:
            await use.__aexit__(None, None, None)
        return JSONResponse(_ollama_final(requested, outcome, whole(outcome.text)))

    async def lines() -> AsyncIterator[bytes]:
        try:
            for text in head:
                yield _ndjson({"model": requested, "created_at": _now(), **piece(text), "done": False})
            async for text in rest:
                yield _ndjson({"model": requested, "created_at": _now(), **piece(text), "done": False})
            yield _ndjson(_ollama_final(requested, outcome, whole("")))
        finally:
            await rest.aclose()  # type: ignore[attr-defined]
            await use.__aexit__(None, None, None)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _options(data: dict[str, Any]) -> dict[str, Any]:
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise APIError(400, "options must be an object")
    return options


def _ndjson(value: dict[str, Any]) -> bytes:
    return (json.dumps(value) + "\n").encode()


# --------------------------------------------------------------------------------------------- Ollama


async def ollama_generate(request: Request) -> Response:
    data = await read_body(request)
    prompt = data.get("prompt", "")
    system = data.get("system")
    if not isinstance(prompt, str) or (system is not None and not isinstance(system, str)):
        raise APIError(400, "prompt and system must be strings")
    raw = data.get("raw") is True
    template = _template(data, "template")

    async def prompt_of(host: ModelHost) -> str | None:
        if not prompt:
            return None
        facts = await host.generation_model()
        if raw or not (template or facts.chat_template):
            return prompt  # a base model (no template) completes the prompt as it is
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return await host.chat_prompt(messages, template)

    return await _ollama_answer(
        request, data, prompt_of, lambda text: {"response": text}, lambda text: {"response": text}
    )


async def ollama_chat(request: Request) -> Response:
    data = await read_body(request)
    raw_messages = data.get("messages")
    template = _template(data, "template")

    async def prompt_of(host: ModelHost) -> str | None:
        if not raw_messages:
            return None
        return await host.chat_prompt(_messages(raw_messages), template)

    def message(text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}

    return await _ollama_answer(request, data, prompt_of, message, message)


# --------------------------------------------------------------------------------------------- OpenAI


async def _openai_answer(
    request: Request,
    data: dict[str, Any],
    make_prompt: Callable[[ModelHost], Any],
    kind: str,
) -> Response:
    outcome = Outcome(started=time.perf_counter_ns())
    limit_key = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    options = sampling(data, OPENAI_DEFAULTS, limit_key)
    requested = model_field(data)
    if requested is None:
        raise APIError(400, "model is required", "model")
    stream = data.get("stream") is True
    stream_options = data.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    chat = kind == "chat"
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    use = pool_of(request).use(requested, keep_alive_field(data), role="generate")
    host = await use.__aenter__()
    try:
        await host.generation_model()
        outcome.loaded = time.perf_counter_ns()
        head, rest = await _first_then_rest(_run(host, await make_prompt(host), options, outcome))
    except BaseException as exc:
        await use.__aexit__(type(exc), exc, exc.__traceback__)
        raise

    def usage() -> dict[str, int]:
        return {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
        }

    base = {"id": ident, "created": created, "model": requested, "system_fingerprint": "hanzo"}
    if not stream:
        try:
            async for _ in rest:
                pass
        finally:
            await use.__aexit__(None, None, None)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.text},
                "finish_reason": outcome.finish_reason,
                "logprobs": None,
            }
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage()})
        choice = {"text": outcome.text, "index": 0, "logprobs": None, "finish_reason": outcome.finish_reason}
        return JSONResponse({**base, "object": "text_completion", "choices": [choice], "usage": usage()})

    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(text: str | None, finish: str | None, first: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text or ""} if first else {}
            if text and not first:
                delta = {"content": text}
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        body: dict[str, Any] = {**base, "object": obj, "choices": [choice]}
        if include_usage:
            body["usage"] = None
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        try:
            first = True
            for text in head:
                yield event(text, None, first)
                first = False
            async for text in rest:
                yield event(text, None, first)
                first = False
            yield event(None, outcome.finish_reason, first and chat)
            if include_usage:
                final = {**base, "object": obj, "choices": [], "usage": usage()}
                yield b"data: " + json.dumps(final).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            await rest.aclose()  # type: ignore[attr-defined]
            await use.__aexit__(None, None, None)

    return StreamingResponse(events(), media_type="text/event-stream")


async def openai_completions(request: Request) -> Response:
    data = await read_body(request)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise APIError(400, "prompt must be a string (one prompt per request)", "prompt")

    async def make_prompt(host: ModelHost) -> str:
        return prompt

    return await _openai_answer(request, data, make_prompt, "completion")


async def openai_chat(request: Request) -> Response:
    data = await read_body(request)
    messages = _messages(data.get("messages"))
    template = _template(data, "chat_template")

    async def make_prompt(host: ModelHost) -> str:
        return await host.chat_prompt(messages, template)

    return await _openai_answer(request, data, make_prompt, "chat")
