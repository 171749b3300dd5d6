"""Reranking with llama.cpp's rank pooling.

The only reranker GGUF that can be built offline is ``tiny_qwen3_reranker_gguf``: Qwen3-Reranker's
shape (rank pooling, the yes/no classifier head stacked from the LM head, the rerank prompt template)
with random weights. The scores are therefore meaningless, but what produces them is checked
exactly: each score must equal P("yes") that the same weights give as a plain language model at the
end of the filled-in template. Ranking quality of a real Qwen3-Reranker is not proven here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hanzo_cli.embedding import load_reranker
from hanzo_cli.errors import HanzoError
from tests.fixtures.models import RERANK_TEMPLATE

QUERY = "the cat"
DOCS = ["a cat is on the mat", "hello world", "yes no", "the cat is on the mat"]


@pytest.fixture
def reranker_ref(
    llama_cpp: None, tiny_qwen3_reranker_gguf: Path, import_model: Callable[[Path, str], str]
) -> str:
    return import_model(tiny_qwen3_reranker_gguf, "tiny-reranker")


def p_yes_as_language_model(path: Path, query: str, document: str) -> float:
    """P("yes") against P("no") after the rerank prompt, from the model's next-token logits."""
    import llama_cpp

    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=512, verbose=False)
    prompt = RERANK_TEMPLATE.replace("{query}", query).replace("{document}", document)
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.eval(tokens)
    logits = np.asarray(llm.scores[len(tokens) - 1], dtype=np.float64)
    [yes], [no] = llm.tokenize(b"yes", add_bos=False), llm.tokenize(b"no", add_bos=False)
    return float(1 / (1 + np.exp(logits[no] - logits[yes])))


def test_scores_are_p_yes_of_the_filled_in_rerank_template(
    reranker_ref: str, tiny_qwen3_reranker_gguf: Path
) -> None:
    model = load_reranker(reranker_ref, pull=False)
    try:
        assert model.runtime.name == "llamacpp"
        scores = model.rerank(QUERY, DOCS)
    finally:
        model.close()
    expected = [p_yes_as_language_model(tiny_qwen3_reranker_gguf, QUERY, doc) for doc in DOCS]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert len(set(scores)) == len(DOCS)  # the document reaches the score


def test_each_document_is_scored_on_its_own(reranker_ref: str) -> None:
    model = load_reranker(reranker_ref, pull=False)
    try:
        forward = model.rerank(QUERY, DOCS)
        backward = model.rerank(QUERY, DOCS[::-1])
        alone = [model.rerank(QUERY, [doc])[0] for doc in DOCS]
        assert model.rerank(QUERY, []) == []
    finally:
        model.close()
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-5)
    np.testing.assert_allclose(alone, forward, atol=1e-5)


def test_long_documents_are_cut_keeping_the_prompt_suffix(reranker_ref: str) -> None:
    model = load_reranker(reranker_ref, pull=False)
    try:
        reranker = model.reranker
        tokens = reranker.prompt_tokens(QUERY, "the cat " * 1000)  # type: ignore[attr-defined]
        suffix = reranker.prompt_tokens(QUERY, "")[-8:]  # type: ignore[attr-defined]
        assert len(tokens) == 512 and tokens[-8:] == suffix  # context 512; "<|im_start|>assistant …" kept
        assert 0 < model.rerank(QUERY, ["the cat " * 1000])[0] < 1
    finally:
        model.close()


def test_an_embedding_model_is_not_a_reranker(tiny_qwen3: str) -> None:
    with pytest.raises(HanzoError, match="is not a reranker: its GGUF declares last pooling, not rank"):
        load_reranker(tiny_qwen3, pull=False)
