"""Text generation on mistral.rs: a GGUF loaded by its GGUF loader (``Which.GGUF``), offline.

How hanzo drives it, and why:

- mistral.rs's Python API streams only chat requests (``send_completion_request`` answers once, at the
  end). So the runner is loaded with an *identity* chat template (``jinja_explicit``: the message's
  text as it is) and a prompt is sent as one chat message: mistral.rs tokenizes exactly the prompt
  (adding BOS unless it starts with one, as llama.cpp's completion does) and streams the tokens.
  Chat prompts are rendered here from the GGUF's own template (or the caller's), as the llama.cpp
  runtime does, so both runtimes see the same prompt text.
- mistral.rs trims the whitespace at the start of a streamed answer (" the" comes as "the"); the
  token's own bytes, sent with ``logprobs``, give it back, so a completion starts as the model wrote it.
- SentencePiece GGUF vocabularies get a ``tokenizer.json`` written by :mod:`hanzo_mistralrs.vocabulary`
  (mistral.rs's own conversion mis-tokenizes them: see there).
- Sampling: temperature, top_p, top_k and stop strings map to the request's; mistral.rs has no
  per-request seed (its sampler is seeded once, when the runner loads), so a seed with sampling is
  refused rather than silently ignored (at temperature 0 it changes nothing and is accepted).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hanzo_cli.api import GenerationChunk, HanzoError, SamplingOptions, read_gguf_info
from hanzo_mistralrs.engine import _first_line, _import_mistralrs
from hanzo_mistralrs.vocabulary import Vocabulary, read_vocabulary, sentencepiece_tokenizer_json

#: The context used when the model's own is larger (as the llama.cpp runtime): prompt + completion.
DEFAULT_CONTEXT = 4096
#: The chat template the runner is loaded with: the one message's text, untouched.
IDENTITY_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


class MistralRsGenerator:
    """:class:`hanzo_cli.api.Generator` on mistral.rs, one sequence at a time.

    ``generate`` may be called from several threads: mistral.rs queues the requests. It decodes them
    one by one (``max_seqs=1``) because batching sequences fails in mistralrs 0.9.5 on CPU: two
    concurrent Gemma 3 requests end in "input tensor is not contiguous Layout { shape: [2, 1, 640] …".
    So ``parallel`` is 1 whatever the caller asks, and the node serialises this model's requests.
    """

    def __init__(self, path: Path, *, context_length: int | None = None, **_ignored: Any) -> None:
        # llama.cpp's tuning options (threads, parallel, …) have no use here: mistral.rs sizes its
        # own thread pool, and decodes one sequence at a time (see the class docstring).
        info = read_gguf_info(path)
        vocab = read_vocabulary(path)
        template = info.metadata.get("tokenizer.chat_template")
        self.chat_template: str | None = template if isinstance(template, str) and template else None
        self._bos = vocab.token("bos_token_id") or ""
        self._eos = vocab.token("eos_token_id") or ""
        #: generations decoded at once
        self.parallel = 1
        # The Runner is a Rust object borrowed mutably by each call ("Already borrowed" from a second
        # thread); a call only queues a request or tokenizes, so holding a lock across it is brief.
        self._calls = threading.Lock()
        mr = _import_mistralrs()
        self._mr = mr
        self._runner: Any = self._load(mr, path, vocab)
        trained = info.context_length or DEFAULT_CONTEXT
        limit = self._runner.max_sequence_length() or trained
        self.context_length: int = min(context_length or min(trained, DEFAULT_CONTEXT), limit)

    def _load(self, mr: Any, path: Path, vocab: Vocabulary) -> Any:
        # mistral.rs reads both files while loading; neither is needed afterwards
        with tempfile.TemporaryDirectory(prefix="hanzo-mistralrs-") as scratch:
            template_file = Path(scratch, "identity.jinja")
            template_file.write_text(IDENTITY_TEMPLATE, encoding="utf-8")
            tokenizer_json: str | None = None
            if vocab.model == "llama":
                tokenizer_file = Path(scratch, "tokenizer.json")
                tokenizer_file.write_text(json.dumps(sentencepiece_tokenizer_json(vocab)), encoding="utf-8")
                tokenizer_json = str(tokenizer_file)
            which = mr.Which.GGUF(
                quantized_model_id=str(path.parent),
                quantized_filename=path.name,
                tokenizer_json=tokenizer_json,
            )
            try:
                return mr.Runner(
                    which=which,
                    token_source="none",
                    jinja_explicit=str(template_file),
                    max_seqs=1,
                )
            except (ValueError, RuntimeError, OSError) as exc:  # a Rust error chain, backtrace included
                raise HanzoError(
                    f"mistral.rs cannot load {path} for generation: {_first_line(exc)}"
                ) from None

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], template: str | None = None) -> str:
        chosen = template or self.chat_template
        if not chosen:
            raise HanzoError(
                "the model has no chat template (a base model): send a prompt to complete instead, "
                "or give a Jinja chat template"
            )
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def strftime_now(fmt: str) -> str:
            return datetime.now().strftime(fmt)

        # as llama-cpp-python's Jinja2ChatFormatter renders GGUF templates (Hugging Face's settings)
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            prompt = environment.from_string(chosen).render(
                messages=[dict(m) for m in messages],
                bos_token=self._bos,
                eos_token=self._eos,
                add_generation_prompt=True,
                raise_exception=raise_exception,
                strftime_now=strftime_now,
            )
        except Exception as exc:  # noqa: BLE001 - a broken template is the caller's error, in one line
            raise HanzoError(f"the chat template failed: {exc}") from None
        # The template writes the BOS token itself; completion adds it again, so it goes here.
        result: str = prompt.removeprefix(self._bos) if self._bos else prompt
        return result

    def count_tokens(self, prompt: str) -> int:
        """The prompt's tokens as mistral.rs feeds them: BOS added (where the model adds one) unless
        the prompt starts with it, as mistral.rs decides for a rendered chat prompt."""
        runner = self._require_runner()
        add_special = not (self._bos and prompt.startswith(self._bos))
        with self._calls:
            return len(runner.tokenize_text(prompt, add_special, None))

    def _require_runner(self) -> Any:
        if self._runner is None:
            raise HanzoError("the generator is closed")
        return self._runner

    def _request(self, prompt: str, options: SamplingOptions, room: int) -> Any:
        sampling = options.temperature is None or options.temperature > 0
        if options.seed is not None and sampling:
            raise HanzoError(
                "mistral.rs takes no per-request seed (its sampler is seeded once per loaded model): "
                "leave the seed out, or use temperature 0, or the llamacpp runtime"
            )
        max_tokens = min(options.max_tokens, room) if options.max_tokens else room
        return self._mr.ChatCompletionRequest(
            messages=[{"role": "user", "content": prompt}],
            model="default",
            stream=True,
            max_tokens=max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k or None,  # 0: no top-k limit, as in llama.cpp and Ollama
            stop_seqs=list(options.stop) or None,
            logprobs=True,  # the first token's bytes (see the module's docstring)
            top_logprobs=0,
        )

    def generate(self, prompt: str, options: SamplingOptions) -> Iterator[GenerationChunk]:
        runner = self._require_runner()
        prompt_tokens = self.count_tokens(prompt)
        if prompt_tokens == 0:
            raise HanzoError("the prompt is empty and the model adds no BOS token: nothing to complete")
        if prompt_tokens >= self.context_length:
            raise HanzoError(
                f"the prompt is {prompt_tokens} tokens; the model's context holds {self.context_length}"
            )
        request = self._request(prompt, options, self.context_length - prompt_tokens)
        return self._stream(runner, request, prompt_tokens)

    def _stream(self, runner: Any, request: Any, prompt_tokens: int) -> Iterator[GenerationChunk]:
        try:
            with self._calls:
                stream: Any = runner.send_chat_completion_request(request)
        except (ValueError, RuntimeError) as exc:
            raise HanzoError(f"mistral.rs failed to generate: {_first_line(exc)}") from None
        first = True
        try:
            while True:
                try:
                    response = next(stream)
                except StopIteration:
                    break
                except (ValueError, RuntimeError) as exc:
                    raise HanzoError(f"mistral.rs failed to generate: {_first_line(exc)}") from None
                choice = response.choices[0]
                text: str = choice.delta.content or ""
                if first:
                    text = _restore_leading_space(text, choice.logprobs)
                    first = False
                if choice.finish_reason is not None:
                    usage = response.usage
                    completion = usage.completion_tokens if usage is not None else 0
                    if usage is not None:
                        prompt_tokens = usage.prompt_tokens
                    if text:
                        yield GenerationChunk(text)
                    finish = "length" if choice.finish_reason in ("length", "model_length") else "stop"
                    yield GenerationChunk("", finish, prompt_tokens, completion)
                    return
                if text:
                    yield GenerationChunk(text)
            raise HanzoError("mistral.rs ended the stream without a finish reason")
        finally:
            # Dropping the stream closes its channel: mistral.rs cancels the sequence at its next token.
            del stream

    def close(self) -> None:
        self._runner = None  # the Rust side shuts its engine down when the Runner is dropped


def _restore_leading_space(text: str, logprob: Any) -> str:
    """``text`` with the leading whitespace mistral.rs trimmed off a stream's first token put back."""
    if logprob is None or text[:1].isspace():
        return text
    raw: bytes | None = getattr(logprob, "bytes", None)
    token = bytes(raw).decode("utf-8", errors="replace") if raw else str(getattr(logprob, "token", ""))
    token = token.replace("\u2581", " ")  # a SentencePiece piece, where mistral.rs sends the piece itself
    return token[: len(token) - len(token.lstrip())] + text
