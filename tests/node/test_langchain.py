"""LangChain's Ollama integration (``langchain-ollama``) against a real built-in node: ``OllamaEmbeddings``
on MiniLM gives the vectors of the node's ``/api/embed`` and of in-process ``hanzo embedding:test``;
``OllamaLLM`` on Gemma 3 270M gives ``/api/generate``'s text (llama-cpp-python's own at temperature 0)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from hanzo_cli.embedding import EmbeddingModel
from tests.helpers import hanzo_json
from tests.node.conftest import PROMPT, TOKENS, ServedNode, serve_node

if os.environ.get("REQUIRE_RUNTIMES") == "1":  # CI: requirements-dev.txt installs it; never skip there
    import langchain_ollama
else:
    langchain_ollama = pytest.importorskip("langchain_ollama")

DOCUMENTS = ["A cat sits on the mat", "A kitten rests on the rug", "Stock markets fell sharply"]
QUERY = "Where is the cat?"
ATOL = 2e-5  # the node's JSON carries float32 values; the reference is float32 too


def node_embed(url: str, texts: list[str], **body: object) -> np.ndarray:
    response = httpx.post(url + "/api/embed", json={"model": "minilm", "input": texts, **body}, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embeddings"])


def test_ollama_embeddings(served_minilm: ServedNode, reference: EmbeddingModel) -> None:
    embeddings = langchain_ollama.OllamaEmbeddings(model="minilm", base_url=served_minilm.url)

    documents = np.asarray(embeddings.embed_documents(DOCUMENTS))
    assert documents.shape == (3, 384)
    np.testing.assert_allclose(documents, node_embed(served_minilm.url, DOCUMENTS), atol=ATOL)
    np.testing.assert_allclose(documents, reference.embed(DOCUMENTS), atol=ATOL)

    query = np.asarray(embeddings.embed_query(QUERY))
    np.testing.assert_allclose(query, node_embed(served_minilm.url, [QUERY])[0], atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)

    # The CLI's in-process path, in its own process, against the node's store.
    env = {"HANZO_HOME": str(served_minilm.home), "HOME": str(served_minilm.home)}
    cli = hanzo_json("embedding:test", *DOCUMENTS, "--model", "local:minilm", "--json", env=env)
    np.testing.assert_allclose(documents, cli["embeddings"], atol=ATOL)
    # The search ranks the kitten sentence above the markets one, as the reference does.
    scores = documents @ query
    assert scores[0] > scores[2] and scores[1] > scores[2]


def test_ollama_embeddings_dimensions_and_async(served_minilm: ServedNode, reference: EmbeddingModel) -> None:
    import asyncio

    embeddings = langchain_ollama.OllamaEmbeddings(model="minilm", base_url=served_minilm.url, dimensions=64)
    cut = np.asarray(embeddings.embed_documents(DOCUMENTS))
    assert cut.shape == (3, 64)
    np.testing.assert_allclose(cut, reference.embed(DOCUMENTS, dimensions=64), atol=ATOL)

    whole = langchain_ollama.OllamaEmbeddings(model="minilm", base_url=served_minilm.url)
    together = asyncio.run(whole.aembed_documents(DOCUMENTS))
    np.testing.assert_allclose(together, reference.embed(DOCUMENTS), atol=ATOL)

    with pytest.raises(Exception, match="not found"):  # the ollama client's ResponseError, a 404
        langchain_ollama.OllamaEmbeddings(model="no-such-model", base_url=served_minilm.url).embed_query("x")


@pytest.fixture(scope="module")
def gemma_node(
    llama: None, gemma_gguf: Path, minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedNode]:
    models = {"gemma": gemma_gguf, "minilm": minilm_gguf}
    with serve_node(tmp_path_factory.mktemp("langchain-home"), models) as served:
        yield served


def test_ollama_llm_matches_api_generate(gemma_node: ServedNode, reference_text: str) -> None:
    llm = langchain_ollama.OllamaLLM(
        model="gemma",
        base_url=gemma_node.url,
        temperature=0,
        num_predict=TOKENS,
        client_kwargs={"timeout": 300},
    )
    text = llm.invoke(PROMPT)
    body = {
        "model": "gemma",
        "prompt": PROMPT,
        "stream": False,
        "options": {"temperature": 0, "num_predict": TOKENS},
    }
    generated = httpx.post(gemma_node.url + "/api/generate", json=body, timeout=300)
    assert generated.status_code == 200, generated.text
    assert text == generated.json()["response"] == reference_text
    assert "".join(llm.stream(PROMPT)) == reference_text
