"""Where the built-in node answers as Ollama and OpenAI do (issue 14's list), against one real node
process serving MiniLM (``served_minilm``), through httpx and the official ``ollama`` client."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import ollama
import pytest

from hanzo_cli.embedding import EmbeddingModel


def post(url: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60, **kwargs)


def test_dimensions_above_the_model_size_give_the_whole_vector(url: str, reference: EmbeddingModel) -> None:
    want = np.asarray(reference.embed(["a cat"]))
    for path, key in (("/api/embed", "embeddings"), ("/v1/embeddings", "data")):
        response = post(url, path, {"input": ["a cat"], "dimensions": 4096})
        assert response.status_code == 200, response.text
        body = response.json()[key]
        got = body if key == "embeddings" else [item["embedding"] for item in body]
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


def test_show_describes_the_model_as_ollama_does(url: str) -> None:
    shown = ollama.Client(host=url).show("minilm")
    assert shown.capabilities == ["embedding"]
    assert shown.details is not None and shown.details.family == "bert"
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "bert"
    assert shown.modelinfo["bert.embedding_length"] == 384
    assert shown.modelinfo["general.parameter_count"] == 22565376
    assert "general.name" not in shown.modelinfo  # as Ollama: the name is the API's
    missing = post(url, "/api/show", {"model": "no-such-model"})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]
    assert post(url, "/api/show", {}).status_code == 400


def test_tags_carry_capabilities_and_models_their_namespace(url: str) -> None:
    (tag,) = httpx.get(url + "/api/tags").json()["models"]
    assert tag["name"] == "minilm" and tag["capabilities"] == ["embedding"]
    (model,) = httpx.get(url + "/v1/models").json()["data"]
    assert model["owned_by"] == "library"  # Ollama: the namespace of the name


def test_truncate_false_refuses_an_input_longer_than_the_context(url: str) -> None:
    long_text = "word " * 700  # MiniLM takes 512 tokens
    refused = post(url, "/api/embed", {"input": ["short", long_text], "truncate": False})
    assert refused.status_code == 400
    assert "input 1" in refused.json()["error"] and "512" in refused.json()["error"]
    assert post(url, "/api/embed", {"input": long_text, "truncate": False}).status_code == 400
    truncated = post(url, "/api/embed", {"input": long_text})
    assert truncated.status_code == 200 and len(truncated.json()["embeddings"][0]) == 384


@pytest.mark.parametrize("path", ["/api/embed", "/v1/embeddings"])
def test_a_body_over_16_mib_is_refused_with_413(url: str, path: str) -> None:
    body = b'{"input": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413
    error = response.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert "16 MiB" in message
    # The node still serves.
    assert post(url, path, {"input": "x"}).status_code == 200


def test_empty_legacy_prompt_and_empty_input_answer_empty(url: str) -> None:
    assert post(url, "/api/embeddings", {"prompt": ""}).json() == {"embedding": []}
    assert post(url, "/api/embed", {"input": []}).json()["embeddings"] == []


def test_official_openai_client(url: str, reference: EmbeddingModel) -> None:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    texts = ["a cat", "stock markets"]
    response = client.embeddings.create(model="minilm", input=texts)
    got = [item.embedding for item in response.data]
    np.testing.assert_allclose(np.asarray(got), np.asarray(reference.embed(texts)), atol=2e-5)
    assert response.usage.prompt_tokens > 0
    assert [m.id for m in client.models.list()] == ["minilm"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="x")
    assert "not found" in missing.value.message and missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="minilm", input="x", dimensions=0)
    assert "dimensions" in bad.value.message and bad.value.param == "dimensions"
