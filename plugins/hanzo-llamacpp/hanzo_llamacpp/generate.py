"""Text generation on llama.cpp: prompts tokenized, sampled and detokenized as llama-cpp-python's
``create_completion`` does them, so a completion at temperature 0 is token for token the same, but
decoded by :class:`~hanzo_llamacpp.batching.BatchDecoder`, so ``parallel`` generations run at once.

Chat prompts come from the GGUF's own chat template (``tokenizer.chat_template``, a Jinja template,
rendered as llama.cpp's server and llama-cpp-python do), or from a template the caller passes; a
model with neither cannot chat (a base model such as Gemma 3 270M), which is a clear error.
"""

from __future__ import annotations

import codecs
import ctypes
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanzo_cli.api import GenerationChunk, HanzoError, SamplingOptions
from hanzo_llamacpp.batching import BatchDecoder
from hanzo_llamacpp.engine import LlamaModel

if TYPE_CHECKING:
    import llama_cpp.llama_cpp as lc
else:
    from hanzo_llamacpp.engine import lc

#: The context each sequence gets when the model's own is larger: KV-cache memory grows with it.
DEFAULT_CONTEXT = 4096


class LlamaGenerator:
    """:class:`hanzo_cli.api.Generator` on llama.cpp; up to ``parallel`` :meth:`generate` calls (from
    different threads) are decoded together, more wait for a free slot."""

    def __init__(
        self,
        path: Path,
        *,
        context_length: int | None = None,
        threads: int | None = None,
        parallel: int = 1,
    ) -> None:
        self._model = LlamaModel(path)
        try:
            if context_length is None:
                trained = self._model.n_ctx_train or DEFAULT_CONTEXT
                context_length = min(trained, DEFAULT_CONTEXT)
            self._decoder = BatchDecoder(
                self._model, context_length=context_length, parallel=parallel, threads=threads
            )
        except BaseException:
            self._model.close()
            raise
        self.parallel: int = self._decoder.parallel
        self.context_length: int = self._decoder.context_length
        template = lc.llama_model_chat_template(self._model.ptr, None)  # tokenizer.chat_template
        self.chat_template: str | None = template.decode("utf-8") if template else None
        self._vocab = self._model.vocab

    # -- text and tokens -------------------------------------------------------------------------------

    def _piece(self, token: int, *, special: bool = False) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = lc.llama_token_to_piece(self._vocab, token, buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._piece(token, special=True).decode("utf-8", errors="replace")

    def _prompt_tokens(self, prompt: str) -> list[int]:
        """As ``create_completion``: special tokens parsed, BOS added where the model wants it, and
        an empty prompt is the BOS token alone."""
        if not prompt:
            bos = lc.llama_vocab_bos(self._vocab)
            if bos < 0:
                raise HanzoError("the prompt is empty (and the model has no beginning-of-text token)")
            return [bos]
        return self._model.tokenize(prompt, add_special=True, parse_special=True)

    def count_tokens(self, prompt: str) -> int:
        return len(self._prompt_tokens(prompt))

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], template: str | None = None) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        chosen = template or self.chat_template
        if not chosen:
            raise HanzoError(
                "the model has no chat template (a base model): send a prompt to complete instead, "
                "or give a Jinja chat template"
            )
        bos = self._token_text(lc.llama_vocab_bos(self._vocab))
        eos = self._token_text(lc.llama_vocab_eos(self._vocab))
        formatter = Jinja2ChatFormatter(chosen, eos_token=eos, bos_token=bos)
        try:
            listed: Any = [dict(m) for m in messages]
            prompt: str = formatter(messages=listed).prompt
        except Exception as exc:  # noqa: BLE001 - a broken template is the caller's error, in one line
            raise HanzoError(f"the chat template failed: {exc}") from None
        # The template writes the BOS token itself; completion adds it again, so it goes here.
        return prompt.removeprefix(bos) if bos else prompt

    # -- generation ------------------------------------------------------------------------------------

    def generate(self, prompt: str, options: SamplingOptions) -> Iterator[GenerationChunk]:
        tokens = self._prompt_tokens(prompt)
        sequence = self._decoder.submit(tokens, options)
        text = _StopFilter(options.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        completion = 0
        finish: str | None = None
        try:
            for token in sequence:
                completion += 1
                ready, stopped = text.feed(decoder.decode(self._piece(token)))
                if ready:
                    yield GenerationChunk(ready)
                if stopped:
                    finish = "stop"
                    break
            else:
                finish = sequence.finish or "stop"
                rest = text.flush(decoder.decode(b"", final=True))
                if rest:
                    yield GenerationChunk(rest)
        finally:
            sequence.cancel()  # a consumer that stops early (or a stop string) frees the slot
        yield GenerationChunk("", finish, len(tokens), completion)

    def close(self) -> None:
        decoder = getattr(self, "_decoder", None)
        if decoder is not None:
            decoder.close()
        model = getattr(self, "_model", None)
        if model is not None:
            model.close()


class _StopFilter:
    """Generated text with the stop strings applied: text is held back while it could be the start
    of a stop string, and everything from the first stop string on is dropped."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text that can be sent now, whether a stop string was reached)."""
        held = self.held + text
        cut = min((i for i in (held.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held = ""
            return held[:cut], True
        keep = max((_overlap(held, s) for s in self.stops), default=0)
        self.held = held[len(held) - keep :]
        return held[: len(held) - keep], False

    def flush(self, text: str) -> str:
        ready, stopped = self.feed(text)
        if stopped:
            return ready
        rest, self.held = self.held, ""
        return ready + rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0
