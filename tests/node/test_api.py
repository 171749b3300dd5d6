"""The built-in node's HTTP APIs, against one real node process serving MiniLM (``served_minilm``):
vectors equal in-process embeddings, through httpx and through the official ``ollama`` client."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import ollama
import pytest

from hanzo_cli import __version__
from hanzo_cli.builtin.node.constants import OLLAMA_API_VERSION
from hanzo_cli.embedding import EmbeddingModel

TEXTS = ["A cat sits on the mat", "A kitten rests on the rug", "Stock markets fell sharply", "hello world"]


def assert_vectors(
    got: Sequence[Sequence[float]], want: Sequence[Sequence[float]], atol: float = 2e-5
) -> None:
    assert len(got) == len(want)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol)


def tokens(model: EmbeddingModel, texts: Sequence[str]) -> int:
    """Tokens the model sees for ``texts`` (the llama.cpp embedder exposes its tokenizer)."""
    tokenize: Any = model.embedder.tokenize  # type: ignore[attr-defined]
    return sum(len(tokenize(t)) for t in texts)


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60)


def test_ollama_embed_matches_in_process(url: str, reference: EmbeddingModel) -> None:
    response = post(url, "/api/embed", {"model": "minilm", "input": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "minilm"
    assert_vectors(body["embeddings"], reference.embed(TEXTS))
    assert body["prompt_eval_count"] == tokens(reference, TEXTS)
    assert isinstance(body["total_duration"], int) and body["total_duration"] > 0
    assert 0 <= body["load_duration"] < body["total_duration"]  # loaded at start-up, not by this request

    one = post(url, "/api/embed", {"model": "minilm", "input": TEXTS[0]}).json()
    assert_vectors(one["embeddings"], reference.embed(TEXTS[:1]))
    assert post(url, "/api/embed", {"model": "minilm", "input": ""}).json()["embeddings"] == []


def test_openai_embeddings_float_and_base64(url: str, reference: EmbeddingModel) -> None:
    want = reference.embed(TEXTS)
    body = post(url, "/v1/embeddings", {"model": "minilm", "input": TEXTS}).json()
    assert body["object"] == "list" and body["model"] == "minilm"
    assert [item["index"] for item in body["data"]] == [0, 1, 2, 3]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    assert_vectors([item["embedding"] for item in body["data"]], want)
    assert body["usage"] == {
        "prompt_tokens": tokens(reference, TEXTS),
        "total_tokens": tokens(reference, TEXTS),
    }

    packed = post(
        url, "/v1/embeddings", {"model": "minilm", "input": TEXTS, "encoding_format": "base64"}
    ).json()
    decoded = [struct.unpack("<384f", base64.b64decode(item["embedding"])) for item in packed["data"]]
    assert_vectors(decoded, want)

    single = post(url, "/v1/embeddings", {"model": "minilm", "input": TEXTS[1]}).json()
    assert_vectors([single["data"][0]["embedding"]], want[1:2])


@pytest.mark.parametrize("name", ["minilm", "MiniLM:latest", "local:minilm", "minilm:latest"])
def test_model_names_the_node_answers_to(url: str, name: str) -> None:
    assert post(url, "/v1/embeddings", {"model": name, "input": "x"}).status_code == 200


def test_dimensions_cut_and_renormalise(url: str, reference: EmbeddingModel) -> None:
    want = reference.embed(TEXTS, dimensions=64)
    ollama_body = post(url, "/api/embed", {"input": TEXTS, "dimensions": 64}).json()
    openai_body = post(url, "/v1/embeddings", {"input": TEXTS, "dimensions": 64}).json()
    assert_vectors(ollama_body["embeddings"], want)
    assert_vectors([item["embedding"] for item in openai_body["data"]], want)
    assert np.allclose(np.linalg.norm(np.asarray(want), axis=1), 1.0, atol=1e-5)


def test_official_ollama_client(url: str, reference: EmbeddingModel) -> None:
    client = ollama.Client(host=url)
    response = client.embed(model="minilm", input=TEXTS)
    assert response.model == "minilm"
    assert_vectors(response.embeddings, reference.embed(TEXTS))
    assert response.prompt_eval_count == tokens(reference, TEXTS)

    # The legacy route gives the model's vector as it is, not normalised (as Ollama's does).
    legacy = np.asarray(client.embeddings(model="minilm", prompt=TEXTS[2]).embedding)
    assert abs(np.linalg.norm(legacy) - 1.0) > 0.01
    assert_vectors([legacy / np.linalg.norm(legacy)], reference.embed(TEXTS[2:3]))

    (model,) = client.list().models
    assert model.model == "minilm"
    assert model.details is not None and model.details.family == "bert"
    assert model.details.format == "gguf" and model.details.quantization_level == "F16"
    assert model.size == reference.info.size

    with pytest.raises(ollama.ResponseError) as missing:
        client.embed(model="no-such-model", input="x")
    assert missing.value.status_code == 404 and "not found" in missing.value.error


def test_info_routes(url: str) -> None:
    root = httpx.get(url + "/")
    assert root.status_code == 200 and "hanzo node is running" in root.text
    assert httpx.get(url + "/api/version").json() == {"version": OLLAMA_API_VERSION}
    health = httpx.get(url + "/v2/health_check").json()
    assert health["status"] == "ok" and health["ready"] is True
    assert health["model"] == "minilm" and health["version"] == __version__
    models = httpx.get(url + "/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["minilm"]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/embed", {"model": "other", "input": "x"}, 404, "not found"),
        ("/v1/embeddings", {"model": "other", "input": "x"}, 404, "not found"),
        ("/api/embed", {"input": 5}, 400, "input must be"),
        ("/api/embed", {"input": ["a", 1]}, 400, "input must be"),
        ("/api/embed", {"input": "a", "truncate": "yes"}, 400, "truncate"),
        ("/api/embed", {"input": "a", "keep_alive": "soon"}, 400, "keep_alive"),
        ("/api/embed", {"input": ["a"] * 2049}, 400, "limit is 2048"),
        ("/v1/embeddings", {"input": ["a"] * 2049}, 400, "limit is 2048"),
        ("/api/embed", ["not", "an", "object"], 400, "JSON object"),
        ("/v1/embeddings", {"input": [1, 2, 3]}, 400, "list of strings"),
        ("/v1/embeddings", {"input": []}, 400, "must not be empty"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ("/v1/embeddings", {"input": "x", "dimensions": 0}, 400, "dimensions"),
        ("/v1/embeddings", {"input": "x", "dimensions": "64"}, 400, "dimensions"),
        ("/api/embed", {"input": "x", "dimensions": True}, 400, "dimensions"),
        ("/api/embeddings", {"prompt": ["x"]}, 400, "prompt"),
        ("/v1/rerank", {"query": "q", "documents": ["d"]}, 400, "needs a reranker"),
        ("/v1/nothing", {}, 404, "not found"),
    ],
)
def test_bad_requests_are_json_errors(url: str, path: str, body: Any, status: int, fragment: str) -> None:
    response = post(url, path, body)
    assert response.status_code == status, response.text
    assert fragment.lower() in error_message(response).lower()


def error_message(response: httpx.Response) -> str:
    """The message of an error: OpenAI's error object on /v1 routes, Ollama's string elsewhere."""
    error = response.json()["error"]
    if response.request.url.path.startswith("/v1/"):
        assert set(error) == {"message", "type", "param", "code"}, error
        kind = "not_found_error" if response.status_code == 404 else "invalid_request_error"
        assert error["type"] == kind
        return str(error["message"])
    assert isinstance(error, str)
    return error


def test_invalid_json_and_wrong_method(url: str) -> None:
    response = httpx.post(url + "/api/embed", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = httpx.get(url + "/v1/embeddings")
    assert response.status_code == 405 and error_message(response)


def test_concurrent_requests_each_get_their_own_vectors(url: str, reference: EmbeddingModel) -> None:
    """Requests arriving together are batched into shared model calls (per dimensions value); each
    must still get exactly its own vectors back, in order."""
    corpus = [f"sentence {i} about {word}" for i, word in enumerate(["cats", "dogs", "stocks"] * 6)]
    requests = [(i, i + 1 + i % 3, (None, 32, 384)[i % 3]) for i in range(16)]  # (start, end, dimensions)
    want = {d: reference.embed(corpus, dimensions=d) for d in (None, 32, 384)}

    def send(request: tuple[int, int, int | None]) -> list[list[float]]:
        start, end, dimensions = request
        body = {"input": corpus[start:end], **({"dimensions": dimensions} if dimensions else {})}
        response = post(url, "/v1/embeddings", body)
        assert response.status_code == 200, response.text
        return [item["embedding"] for item in response.json()["data"]]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, requests))
    for (start, end, dimensions), got in zip(requests, results, strict=True):
        # Texts batched with other requests' texts differ from a lone call by float rounding (llama.cpp's
        # batch shapes, up to ~1e-4); a vector handed to the wrong request would differ by ~0.1.
        assert_vectors(got, want[dimensions][start:end], atol=1e-3)
