"""Text generation on llama.cpp through llama-cpp-python's ``Llama``: its tokenizer, KV cache and
sampler chain, so a completion at temperature 0 is token for token what ``create_completion`` gives.

Chat prompts come from the GGUF's own chat template (``tokenizer.chat_template``, a Jinja template,
rendered as llama.cpp's server and llama-cpp-python do), or from a template the caller passes; a
model with neither cannot chat (a base model such as Gemma 3 270M), which is a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from hanzo_cli.api import GenerationChunk, HanzoError, SamplingOptions, read_gguf_info
from hanzo_llamacpp.engine import default_threads

#: The context loaded when the model's own is larger: KV-cache memory grows with it.
DEFAULT_CONTEXT = 4096


class LlamaGenerator:
    """:class:`hanzo_cli.api.Generator` on llama.cpp (one sequence at a time: calls are serialised
    by the caller, which runs them in one thread)."""

    def __init__(self, path: Path, *, context_length: int | None = None, threads: int | None = None) -> None:
        if context_length is None:
            trained = read_gguf_info(path).context_length or DEFAULT_CONTEXT
            context_length = min(trained, DEFAULT_CONTEXT)
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_length,
                n_threads=threads or default_threads(),
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise HanzoError(f"llama.cpp cannot load {path} for generation: {exc}") from None
        self.context_length: int = self._llama.n_ctx()
        template = self._llama.metadata.get("tokenizer.chat_template")
        self.chat_template: str | None = template or None

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = self._llama.detokenize([token], special=True)
        return text.decode("utf-8", errors="replace")

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], template: str | None = None) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        chosen = template or self.chat_template
        if not chosen:
            raise HanzoError(
                "the model has no chat template (a base model): send a prompt to complete instead, "
                "or give a Jinja chat template"
            )
        bos = self._token_text(self._llama.token_bos())
        formatter = Jinja2ChatFormatter(
            chosen, eos_token=self._token_text(self._llama.token_eos()), bos_token=bos
        )
        try:
            listed: Any = [dict(m) for m in messages]
            prompt: str = formatter(messages=listed).prompt
        except Exception as exc:  # noqa: BLE001 - a broken template is the caller's error, in one line
            raise HanzoError(f"the chat template failed: {exc}") from None
        # The template writes the BOS token itself; completion adds it again, so it goes here.
        return prompt.removeprefix(bos) if bos else prompt

    def count_tokens(self, prompt: str) -> int:
        return len(self._llama.tokenize(prompt.encode("utf-8"), special=True))

    def generate(self, prompt: str, options: SamplingOptions) -> Iterator[GenerationChunk]:
        prompt_tokens = self.count_tokens(prompt) if prompt else 1
        if prompt_tokens >= self.context_length:
            raise HanzoError(
                f"the prompt is {prompt_tokens} tokens; the model's context holds {self.context_length}"
            )
        arguments: dict[str, Any] = {"max_tokens": options.max_tokens, "stop": list(options.stop) or None}
        for name in ("temperature", "top_p", "top_k", "seed"):
            value = getattr(options, name)
            if value is not None:
                arguments[name] = value
        generated = 0
        finish: str | None = None
        stream = self._llama.create_completion(prompt, stream=True, **arguments)
        try:
            for chunk in stream:
                choice: Any = chunk["choices"][0]  # type: ignore[index]
                finish = choice.get("finish_reason") or finish
                text = choice.get("text") or ""
                generated = self._llama.n_tokens - prompt_tokens
                if text:
                    yield GenerationChunk(text)
        finally:
            stream.close()  # type: ignore[union-attr]  # a consumer that stops early stops llama.cpp
        # llama.cpp evaluates each sampled token before sampling the next, so the last one counted
        # by create_completion (the one that reached max_tokens) is not in the cache yet; an end-of-text
        # token is not counted at all.
        completion = generated + (1 if finish == "length" else 0)
        yield GenerationChunk("", finish or "stop", prompt_tokens, completion)

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
