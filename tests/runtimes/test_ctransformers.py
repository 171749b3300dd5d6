"""The ctransformers runtime: llama-architecture GGUFs only, last-token embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanzo_cli.embedding import load_embedding_model
from hanzo_cli.errors import HanzoError

TEXTS = ["hello world", "the cat is on the mat", "abc"]


def test_ctransformers_embeds_with_a_llama_gguf(ctransformers: None, tiny_llama: str) -> None:
    model = load_embedding_model(tiny_llama, runtime="ctransformers", pull=False)
    try:
        assert (model.runtime.name, model.dimensions, model.pooling) == ("ctransformers", 32, "last")
        vectors = np.asarray(model.embed(TEXTS))
        assert vectors.shape == (3, 32)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
        assert not np.allclose(vectors[0], vectors[1])
        np.testing.assert_allclose(model.embed(TEXTS[1:2])[0], vectors[1], atol=1e-6)  # no state leaks
    finally:
        model.close()


def test_ctransformers_and_llama_cpp_agree_on_last_token_embeddings(
    ctransformers: None, llama_cpp: None, tiny_llama: str
) -> None:
    # two independent llama.cpp builds (2023 and today) computing the same last-token hidden state
    vectors = {}
    for runtime in ("ctransformers", "llamacpp"):
        model = load_embedding_model(tiny_llama, runtime=runtime, pull=False)
        vectors[runtime] = np.asarray(model.embed(TEXTS))
        model.close()
    cosines = (vectors["ctransformers"] * vectors["llamacpp"]).sum(axis=1)
    assert cosines.min() > 0.9999, cosines


def test_ctransformers_refuses_pooling_it_cannot_do(ctransformers: None, tiny_llama_gguf: Path) -> None:
    from hanzo_ctransformers.runtime import CTransformersRuntime

    with pytest.raises(HanzoError, match="last token only; this model needs mean pooling"):
        CTransformersRuntime().load_embedder(tiny_llama_gguf, pooling="mean")


def test_ctransformers_cannot_be_forced_on_qwen3(ctransformers: None, tiny_qwen3: str) -> None:
    with pytest.raises(HanzoError, match=r"runtime 'ctransformers' cannot embed a qwen3-architecture model"):
        load_embedding_model(tiny_qwen3, runtime="ctransformers", pull=False)
