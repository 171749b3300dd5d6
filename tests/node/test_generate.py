"""Generation on the built-in node with a real LLM (Gemma 3 270M base, offline from PyPI): the node's
text equals llama-cpp-python's own ``create_completion`` on the same file at temperature 0, through
httpx and the official ``ollama`` and ``openai`` clients, streaming and not; chat needs a template;
a client that leaves mid-stream stops its generation; an embedder and the LLM serve side by side."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import ollama
import pytest

from tests.node.conftest import PROMPT, TOKENS, ServedNode, serve_node

TEMPLATE = (
    "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "<start_of_turn>model\n"
)


@pytest.fixture(scope="module")
def node(
    llama: None, gemma_gguf: Path, minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedNode]:
    models = {"gemma": gemma_gguf, "minilm": minilm_gguf}
    with serve_node(tmp_path_factory.mktemp("gen-home"), models) as served:
        yield served


def generate(url: str, **body: object) -> httpx.Response:
    return httpx.post(url + "/api/generate", json={"model": "gemma", **body}, timeout=300)


def test_ollama_generate_equals_llama_cpp(node: ServedNode, reference_text: str) -> None:
    options = {"temperature": 0, "num_predict": TOKENS}
    response = generate(node.url, prompt=PROMPT, stream=False, options=options)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == reference_text
    assert body["done"] is True and body["done_reason"] == "length"
    assert body["eval_count"] == TOKENS and body["prompt_eval_count"] == 6  # <bos> + 5 tokens
    assert body["total_duration"] >= body["load_duration"] >= 0

    client = ollama.Client(host=node.url, timeout=300)
    pieces = list(client.generate(model="gemma", prompt=PROMPT, options=options, stream=True))
    assert "".join(p.response or "" for p in pieces) == reference_text
    assert len(pieces) > 2 and pieces[-1].done and pieces[-1].eval_count == TOKENS
    assert client.generate(model="gemma", prompt=PROMPT, options=options).response == reference_text


def test_openai_completions_equal_llama_cpp(node: ServedNode, reference_text: str) -> None:
    import openai

    client = openai.OpenAI(base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    completion = client.completions.create(model="gemma", prompt=PROMPT, max_tokens=TOKENS, temperature=0)
    assert completion.choices[0].text == reference_text
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == TOKENS
    assert completion.usage.prompt_tokens == 6

    stream = client.completions.create(
        model="gemma",
        prompt=PROMPT,
        max_tokens=TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reference_text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6 + TOKENS


def test_chat_needs_a_template(node: ServedNode) -> None:
    import openai

    messages = [{"role": "user", "content": "Say hello."}]
    refused = httpx.post(node.url + "/api/chat", json={"model": "gemma", "messages": messages}, timeout=300)
    assert refused.status_code == 400 and "no chat template" in refused.json()["error"]

    options = {"temperature": 0, "num_predict": 8}
    body = {"model": "gemma", "messages": messages, "template": TEMPLATE, "stream": False, "options": options}
    chatted = httpx.post(node.url + "/api/chat", json=body, timeout=300)
    assert chatted.status_code == 200, chatted.text
    assert chatted.json()["message"]["role"] == "assistant" and chatted.json()["eval_count"] == 8

    client = openai.OpenAI(base_url=node.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gemma", messages=messages)  # type: ignore[arg-type]
    assert "no chat template" in bad.value.message
    reply = client.chat.completions.create(
        model="gemma",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=8,
        temperature=0,
        extra_body={"chat_template": TEMPLATE},
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    streamed = client.chat.completions.create(
        model="gemma",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=8,
        temperature=0,
        stream=True,
        extra_body={"chat_template": TEMPLATE},
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)  # type: ignore[union-attr]
    assert text == reply.choices[0].message.content


def test_an_embedder_and_the_llm_side_by_side(node: ServedNode, reference_text: str) -> None:
    def call(i: int) -> int:
        if i % 2:
            return httpx.post(
                node.url + "/api/embed", json={"model": "minilm", "input": "x"}, timeout=300
            ).status_code
        options = {"temperature": 0, "num_predict": 4}
        return generate(node.url, prompt=PROMPT, stream=False, options=options).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(call, range(6))) == [200] * 6
    names = {m["name"] for m in httpx.get(node.url + "/api/ps").json()["models"]}
    assert names == {"minilm", "gemma"}
    missing = generate(node.url, model="minilm", prompt="x")  # an embedding model does not generate
    assert missing.status_code == 400 and "does not generate" in missing.json()["error"]


def test_a_client_that_leaves_stops_its_generation(node: ServedNode) -> None:
    body = {"model": "gemma", "prompt": "Once upon a time", "options": {"num_predict": 3000}}
    with httpx.stream("POST", node.url + "/api/generate", json=body, timeout=300) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["done"] is False
    deadline = time.monotonic() + 120
    while "stopped generating" not in node.log.read_text():
        assert time.monotonic() < deadline, "the node kept generating for a client that left"
        time.sleep(0.2)
    quick = generate(node.url, prompt=PROMPT, stream=False, options={"num_predict": 2, "temperature": 0})
    assert quick.status_code == 200 and quick.json()["eval_count"] == 2


def test_concurrent_generations_are_decoded_together(node: ServedNode, reference_text: str) -> None:
    """Two streams overlap (continuous batching): the second one's first token comes while the first
    is still generating, where one-at-a-time serving would hold it until the first had ended. Each
    ends with its own token count, and a request alone afterwards still equals create_completion."""
    body = {"model": "gemma", "prompt": "Once upon a time", "options": {"num_predict": 400, "temperature": 0}}
    with httpx.stream("POST", node.url + "/api/generate", json=body, timeout=300) as first:
        first_lines = first.iter_lines()
        assert json.loads(next(first_lines))["done"] is False  # the first is generating
        second = generate(node.url, prompt=PROMPT, stream=False, options={"num_predict": 8, "temperature": 0})
        assert second.status_code == 200, second.text
        assert second.json()["eval_count"] == 8
        rest = [json.loads(line) for line in first_lines if line]
    assert rest[-1]["done"] and rest[-1]["eval_count"] == 400
    # The second was answered while the first was still generating (one at a time, it would have
    # waited for the first's last token).
    assert _when(second.json()["created_at"]) < _when(rest[-1]["created_at"])
    alone = generate(node.url, prompt=PROMPT, stream=False, options={"temperature": 0, "num_predict": TOKENS})
    assert alone.json()["response"] == reference_text


def _when(created_at: str) -> datetime:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00"))


def test_bad_generation_requests(node: ServedNode) -> None:
    assert generate(node.url, prompt=PROMPT, options={"temperature": "hot"}).status_code == 400
    assert generate(node.url, prompt=5).status_code == 400
    loaded = generate(node.url)  # no prompt: loads the model, as Ollama's does
    assert loaded.status_code == 200 and loaded.json()["done_reason"] == "load"
    unknown = generate(node.url, model="no-such-model", prompt="x")
    assert unknown.status_code == 404
    openai_bad = httpx.post(node.url + "/v1/completions", json={"model": "gemma", "prompt": 3})
    assert openai_bad.status_code == 400 and openai_bad.json()["error"]["param"] == "prompt"


def worker_pids(node_pid: int, model: str) -> list[int]:
    """The node's worker processes running ``model`` (found in /proc: children of the node)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if (
            parent == node_pid
            and b"hanzo_cli.builtin.node.worker" in command
            and model.encode() in b" ".join(command)
        ):
            found.append(int(entry.name))
    return found


def test_a_worker_that_dies_fails_only_its_requests(node: ServedNode) -> None:
    """SIGKILL the LLM's worker mid-request: that request gets a 500 saying so, the embedder (another
    worker) keeps serving, the next generation starts a new worker, and the log says what happened."""
    options = {"temperature": 0, "num_predict": 2}
    assert generate(node.url, prompt=PROMPT, stream=False, options=options).status_code == 200
    (pid,) = worker_pids(node.process.pid, "gemma")
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(
            generate, node.url, prompt="Once upon a time", stream=False, options={"num_predict": 3000}
        )
        time.sleep(2)  # let the worker start generating
        os.kill(pid, 9)
        answer = long.result(timeout=300)
    assert answer.status_code == 500
    assert "died" in answer.json()["error"] and "SIGKILL" in answer.json()["error"]
    embedded = httpx.post(node.url + "/api/embed", json={"model": "minilm", "input": "x"}, timeout=300)
    assert embedded.status_code == 200
    again = generate(node.url, prompt=PROMPT, stream=False, options=options)
    assert again.status_code == 200 and again.json()["eval_count"] == 2
    (new_pid,) = worker_pids(node.process.pid, "gemma")
    assert new_pid != pid
    assert f"(pid {pid}) died: killed by SIGKILL" in node.log.read_text()
