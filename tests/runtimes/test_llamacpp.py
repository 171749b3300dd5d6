"""The llama.cpp runtime through hanzo's embedding API, on real GGUF models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanzo_cli.embedding import EmbeddingModel, cosine_matrix, load_embedding_model
from hanzo_cli.errors import HanzoError
from hanzo_cli.plugins import reset_for_tests

DEFAULT_QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query"

CAT = "A cat sits on the mat"
KITTEN = "A kitten rests on the rug"
STOCKS = "Stock markets fell sharply"


@pytest.fixture
def minilm_model(minilm: str) -> EmbeddingModel:
    model = load_embedding_model(minilm, pull=False)
    yield model
    model.close()


def raw_llama(path: Path, pooling: int | None = None, n_ctx: int = 512):  # type: ignore[no-untyped-def]
    """llama-cpp-python's own high-level API, as a user would call it."""
    import llama_cpp

    kwargs = {} if pooling is None else {"pooling_type": pooling}
    return llama_cpp.Llama(
        str(path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, verbose=False, **kwargs
    )


def norms(vectors: list[list[float]]) -> np.ndarray:
    return np.linalg.norm(np.asarray(vectors), axis=1)


def test_minilm_gives_384_dimensional_unit_vectors(minilm_model: EmbeddingModel) -> None:
    assert minilm_model.runtime.name == "llamacpp"
    assert (minilm_model.dimensions, minilm_model.pooling, minilm_model.gguf.architecture) == (
        384,
        "mean",
        "bert",
    )
    assert minilm_model.query_format is None  # not a Qwen3-style model: no instruction prefix
    vectors = minilm_model.embed([CAT, KITTEN, STOCKS, ""])
    assert [len(v) for v in vectors] == [384] * 4
    np.testing.assert_allclose(norms(vectors), 1.0, atol=1e-6)


def test_minilm_similarities_have_real_semantics(minilm_model: EmbeddingModel) -> None:
    sim = cosine_matrix(minilm_model.embed([CAT, KITTEN, STOCKS]))
    assert sim[0][1] > sim[0][2] + 0.4
    # the values sentence-transformers gives for all-MiniLM-L6-v2 (REFERENCE §9)
    assert sim[0][1] == pytest.approx(0.659, abs=0.01)
    assert sim[0][2] == pytest.approx(0.054, abs=0.01)


def assert_same_vectors(actual: list[list[float]], expected: list[list[float]]) -> None:
    """Equal up to float noise: llama.cpp's own results move by ~1e-4 with the batch a text is in."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape
    np.testing.assert_allclose(a, e, atol=5e-4)
    cosines = (a * e).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1))
    assert cosines.min() > 0.99999, cosines


def test_vectors_equal_raw_llama_cpp_python(minilm_model: EmbeddingModel, minilm_gguf: Path) -> None:
    texts = [CAT, KITTEN, STOCKS, "word " * 150, "Short.", "A much longer sentence " * 12]
    raw = raw_llama(minilm_gguf).embed(texts, normalize=True)
    assert_same_vectors(minilm_model.embed(texts), raw)


def test_batches_of_many_texts_match_one_at_a_time(minilm: str) -> None:
    # 16-token batches: 30 texts of 5 tokens take 15 batches; one text longer than a batch grows it
    model = load_embedding_model(minilm, pull=False, runtime_options={"batch_tokens": 16})
    try:
        texts = [f"item number {i}" for i in range(30)] + ["a sentence of more than sixteen tokens " * 4]
        together = model.embed(texts)
        for i in (0, 17, 29, 30):
            assert_same_vectors(together[i : i + 1], model.embed([texts[i]]))
    finally:
        model.close()


def test_max_tokens_truncates_inputs(minilm: str) -> None:
    model = load_embedding_model(minilm, pull=False, runtime_options={"max_tokens": 8})
    try:
        tokens = model.embedder.tokenize("one two three four five six seven eight nine")  # type: ignore[attr-defined]
        assert len(tokens) == 8 and tokens[-1] == 102
        assert len(model.embed(["one two three four five six seven eight nine"])[0]) == 384
    finally:
        model.close()


def test_long_input_is_truncated_to_the_context_keeping_the_final_sep(minilm_model: EmbeddingModel) -> None:
    long_text = "the quick brown fox jumps over the lazy dog " * 200  # ~1800 tokens; context 512
    tokens = minilm_model.embedder.tokenize(long_text)  # type: ignore[attr-defined]
    assert len(tokens) == 512 and tokens[0] == 101 and tokens[-1] == 102  # [CLS] … [SEP]
    vectors = minilm_model.embed([long_text, CAT])
    np.testing.assert_allclose(norms(vectors), 1.0, atol=1e-6)
    assert_same_vectors(vectors[1:], minilm_model.embed([CAT]))


def test_dimensions_cut_and_renormalise(minilm_model: EmbeddingModel) -> None:
    full = np.asarray(minilm_model.embed([CAT, KITTEN]))
    cut = np.asarray(minilm_model.embed([CAT, KITTEN], dimensions=64))
    assert cut.shape == (2, 64)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    assert minilm_model.embed([CAT], dimensions=384)[0] == pytest.approx(full[0].tolist(), abs=1e-6)


@pytest.mark.parametrize("dimensions", [0, -3, 385])
def test_dimensions_out_of_range_is_a_clear_error(minilm_model: EmbeddingModel, dimensions: int) -> None:
    with pytest.raises(HanzoError, match=r"dimensions must be between 1 and 384"):
        minilm_model.embed([CAT], dimensions=dimensions)


def test_no_texts_gives_no_vectors_and_one_string_is_refused(minilm_model: EmbeddingModel) -> None:
    assert minilm_model.embed([]) == []
    with pytest.raises(TypeError):
        minilm_model.embed(CAT)


def test_qwen3_uses_last_token_pooling_like_llama_cpp(tiny_qwen3: str, tiny_qwen3_gguf: Path) -> None:
    import llama_cpp

    model = load_embedding_model(tiny_qwen3, pull=False)
    try:
        assert (model.runtime.name, model.pooling, model.dimensions) == ("llamacpp", "last", 32)
        texts = ["the cat is on the mat", "hello world", "abc"]
        raw = raw_llama(tiny_qwen3_gguf, pooling=llama_cpp.LLAMA_POOLING_TYPE_LAST).embed(
            texts, normalize=True
        )
        assert_same_vectors(model.embed(texts), raw)
        # sequences of a causal model batched together must not see each other
        assert_same_vectors(model.embed(texts)[1:2], model.embed([texts[1]]))
    finally:
        model.close()


def test_query_rules_come_from_the_catalog_not_the_architecture(
    tiny_qwen3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only runtime plugins: no catalog entry declares the Qwen3-Embedding family's instruction, so a
    # qwen3 GGUF with last-token pooling gets none (the core knows no model family by itself).
    model = load_embedding_model(tiny_qwen3, pull=False)
    try:
        assert model.query_format is None and model.prepare("the cat", query=True) == "the cat"
    finally:
        model.close()


def test_qwen3_query_gets_the_instruction_prefix_documents_do_not(
    tiny_qwen3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Hugging Face plugin's catalog declares the Qwen3-Embedding family's query instruction; the
    # tiny model's GGUF name (tiny-qwen3-embedding) puts it in that family.
    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp,huggingface")
    reset_for_tests()
    model = load_embedding_model(tiny_qwen3, pull=False)
    try:
        text = "the cat"
        prefixed = f"Instruct: {DEFAULT_QUERY_TASK}\nQuery:{text}"
        assert model.prepare(text, query=True) == prefixed
        assert model.prepare(text) == text
        tokenize = model.embedder.tokenize  # type: ignore[attr-defined]
        assert len(tokenize(prefixed)) > len(tokenize(text)) + 10
        [as_document] = model.embed([text])
        [as_query] = model.embed([text], query=True)
        [by_hand] = model.embed([prefixed])
        assert as_query == pytest.approx(by_hand, abs=1e-6)
        assert not np.allclose(as_query, as_document, atol=1e-3)
        [custom] = model.embed([text], instruction="Find the animal")
        [custom_by_hand] = model.embed([f"Instruct: Find the animal\nQuery:{text}"])
        assert custom == pytest.approx(custom_by_hand, abs=1e-6)
    finally:
        model.close()


def test_generative_llama_gguf_embeds_one_vector_per_text(tiny_llama: str, llama_cpp: None) -> None:
    # the GGUF declares no pooling (raw llama-cpp-python would give one vector per token)
    model = load_embedding_model(tiny_llama, pull=False)
    try:
        assert (model.runtime.name, model.pooling) == ("llamacpp", "last")
        vectors = model.embed(["hello world", "abc", "the cat is on the mat"])
        assert [len(v) for v in vectors] == [32, 32, 32]
        np.testing.assert_allclose(norms(vectors), 1.0, atol=1e-6)
    finally:
        model.close()


def test_a_reranker_gguf_is_refused_for_embedding(
    llama_cpp: None, tiny_qwen3_reranker_gguf: Path, import_model
) -> None:  # type: ignore[no-untyped-def]
    ref = import_model(tiny_qwen3_reranker_gguf, "tiny-reranker")
    with pytest.raises(HanzoError, match="is a reranker"):
        load_embedding_model(ref, pull=False)


def test_a_gguf_llama_cpp_cannot_load_is_a_one_line_error_with_its_reason(
    llama_cpp: None, tmp_path: Path, import_model
) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.models import fake_gguf_with_file_type

    # a valid GGUF header claiming llama, with none of the tensors a llama model needs
    ref = import_model(
        fake_gguf_with_file_type(tmp_path / "hollow.gguf", arch="llama", file_type="F32"), "hollow"
    )
    with pytest.raises(HanzoError) as caught:
        load_embedding_model(ref, pull=False)
    message = caught.value.message
    assert "llama.cpp cannot load" in message
    assert "tensor" in message or "key not found" in message, message  # llama.cpp's own reason


def test_model_not_pulled_without_pull_is_a_clear_error(llama_cpp: None) -> None:
    with pytest.raises(HanzoError, match="is not pulled"):
        load_embedding_model("local:nothing-here", pull=False)
