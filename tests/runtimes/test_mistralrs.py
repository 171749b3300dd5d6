"""The mistral.rs runtime on a real (tiny, random-weight) Qwen3-Embedding safetensors folder.

The proof that the runtime is right, not just the plumbing: the same weights written as a ``qwen3``
GGUF and embedded by llama.cpp give the same vectors (cosine >= 0.999 per text) with the same
last-token pooling and normalisation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hanzo_cli.errors import HanzoError
from hanzo_cli.plugins import registry
from tests.runtimes.conftest import require

pytest_plugins = ["tests.fixtures.safetensors_models"]

TEXTS = [
    "Hello world",
    "The cat is on the mat.",
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:gravity",
    "Embeddings map texts to vectors; similar texts get similar vectors. " * 6,
    "Ünïcödé — 日本語 and emoji 🙂 are bytes to a byte-level BPE",
    "a",
]


@pytest.fixture(autouse=True)
def with_mistralrs(monkeypatch: pytest.MonkeyPatch) -> None:
    require("mistralrs")
    require("hanzo_mistralrs")
    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp,ctransformers,mistralrs")


@pytest.fixture
def folder_copy(tiny_qwen3_folder: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny folder, for breaking it."""
    return Path(shutil.copytree(tiny_qwen3_folder, tmp_path / "model"))


def runtime(name: str) -> object:
    return next(r for r in registry().runtimes if r.name == name)


def unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    normalised: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normalised


@pytest.fixture(scope="module")
def mistral_vectors(tiny_qwen3_folder: Path) -> Iterator[np.ndarray]:
    from hanzo_mistralrs.engine import MistralRsEmbedder

    embedder = MistralRsEmbedder(tiny_qwen3_folder)
    try:
        yield np.asarray(embedder.embed(TEXTS), dtype=np.float64)
    finally:
        embedder.close()


def test_same_weights_agree_with_llama_cpp(mistral_vectors: np.ndarray, tiny_qwen3_twin_gguf: Path) -> None:
    require("llama_cpp")
    from hanzo_llamacpp.engine import LlamaEmbedder

    llama = LlamaEmbedder(tiny_qwen3_twin_gguf, "last")
    try:
        reference = unit(llama.embed(TEXTS))
    finally:
        llama.close()
    # mistral.rs applies the folder's Normalize module itself
    assert np.allclose(np.linalg.norm(mistral_vectors, axis=1), 1.0, atol=1e-4)
    cosines = (unit(mistral_vectors.tolist()) * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    # and the texts are told apart: random weights still give distinct vectors
    assert (unit(mistral_vectors.tolist()) @ unit(mistral_vectors.tolist()).T)[0, 1] < 0.999


def test_a_batch_equals_one_text_at_a_time(tiny_qwen3_folder: Path, mistral_vectors: np.ndarray) -> None:
    from hanzo_mistralrs.engine import MistralRsEmbedder

    embedder = MistralRsEmbedder(tiny_qwen3_folder)
    try:
        one_by_one = np.asarray([embedder.embed([t])[0] for t in TEXTS])
    finally:
        embedder.close()
    assert np.allclose(one_by_one, mistral_vectors, atol=1e-5)


def test_runtime_embeds_safetensors_folders_only() -> None:
    from hanzo_mistralrs.runtime import MistralRsRuntime

    rt = MistralRsRuntime()
    assert rt.supports("qwen3", "embed", "safetensors")
    assert rt.supports("gemma3_text", "embed", "safetensors")
    assert not rt.supports("qwen3", "embed", "gguf")  # GGUFs stay with llama.cpp
    assert not rt.supports("bert", "embed", "safetensors")
    assert not rt.supports("qwen3", "rerank", "safetensors")
    assert "safetensors gemma3_text, qwen3" in rt.summary()


def test_choice_by_format(tiny_qwen3_folder: Path) -> None:
    from hanzo_cli.embedding import select_runtime

    require("llama_cpp")
    assert select_runtime("qwen3", "embed").name == "llamacpp"  # a GGUF keeps llama.cpp first
    assert select_runtime("qwen3", "embed", format="safetensors").name == "mistralrs"
    with pytest.raises(HanzoError, match=r"runtime 'mistralrs' cannot embed a qwen3-architecture model"):
        select_runtime("qwen3", "embed", "mistralrs")
    with pytest.raises(HanzoError, match=r"runtimes that can: llamacpp"):
        select_runtime("qwen3", "embed", "mistralrs")
    with pytest.raises(HanzoError, match=r"cannot embed a safetensors bert-architecture model"):
        select_runtime("bert", "embed", "mistralrs", "safetensors")
    with pytest.raises(
        HanzoError, match=r"no installed runtime can embed a safetensors model of architecture 'bert'"
    ):
        select_runtime("bert", "embed", format="safetensors")
    with pytest.raises(HanzoError, match=r"no installed runtime can rerank a safetensors model"):
        select_runtime("qwen3", "rerank", format="safetensors")


def _load(path: Path) -> None:
    from hanzo_mistralrs.engine import MistralRsEmbedder

    MistralRsEmbedder(path).close()


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_missing_tokenizer_and_shards_are_named(folder_copy: Path) -> None:
    (folder_copy / "tokenizer.json").unlink()
    with pytest.raises(HanzoError, match=r"lacks tokenizer\.json"):
        _load(folder_copy)
    shutil.copy(folder_copy / "tokenizer_config.json", folder_copy / "tokenizer.json")  # any file
    (folder_copy / "model.safetensors").rename(folder_copy / "model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {
            "embed_tokens.weight": "model-00001-of-00002.safetensors",
            "norm.weight": "model-00002-of-00002.safetensors",
        },
    }
    (folder_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(HanzoError, match=r"lacks model-00002-of-00002\.safetensors$"):
        _load(folder_copy)


def test_pooling_configs_mistral_rs_cannot_run_are_one_line_errors(folder_copy: Path) -> None:
    pooling = folder_copy / "1_Pooling" / "config.json"
    original = pooling.read_text()
    _edit_json(pooling, pooling_mode_max_tokens=None)
    with pytest.raises(HanzoError, match=r"lacks pooling_mode_max_tokens \(mistral\.rs needs every key\)"):
        _load(folder_copy)
    pooling.write_text(original)
    _edit_json(pooling, pooling_mode_lasttoken=False, pooling_mode_cls_token=True)
    # mistral.rs would panic in its engine thread (unimplemented!): refused before loading
    with pytest.raises(HanzoError, match=r"pools by mean or last token only; .* asks for cls"):
        _load(folder_copy)
    pooling.write_text("{not json")
    with pytest.raises(HanzoError, match=r"1_Pooling/config\.json is malformed: not valid JSON") as err:
        _load(folder_copy)
    assert "\n" not in str(err.value)
    pooling.write_text(original)
    _edit_json(pooling, pooling_mode_lasttoken="yes")
    with pytest.raises(HanzoError, match=r"is malformed: pooling_mode_lasttoken is 'yes'"):
        _load(folder_copy)


def test_other_architectures_and_plain_models_are_refused(folder_copy: Path) -> None:
    (folder_copy / "modules.json").unlink()
    with pytest.raises(HanzoError, match=r"not a sentence-transformers embedding model \(no modules\.json\)"):
        _load(folder_copy)
    _edit_json(folder_copy / "config.json", model_type="bert")
    with pytest.raises(HanzoError, match=r"mistral\.rs embeds gemma3_text, qwen3 models, not bert"):
        _load(folder_copy)


def test_errors_from_mistral_rs_itself_are_one_line(folder_copy: Path) -> None:
    _edit_json(folder_copy / "config.json", hidden_size=48)  # weights no longer fit the config
    with pytest.raises(HanzoError, match=r"^mistral\.rs cannot load") as err:
        _load(folder_copy)
    assert "\n" not in str(err.value)


def test_without_the_plugin_a_safetensors_model_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from hanzo_cli import plugins
    from hanzo_cli.embedding import select_runtime

    require("llama_cpp")
    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp")
    plugins.reset_for_tests()
    with pytest.raises(HanzoError, match=r"install it with: pip install 'hanzo-cli\[mistralrs\]'"):
        select_runtime("qwen3", "embed", format="safetensors")
    assert select_runtime("qwen3", "embed").name == "llamacpp"


def test_an_embeddinggemma_folder_runs_with_its_dense_modules(tmp_path: Path) -> None:
    """Plumbing only (no second runtime to compare with here): the architecture maps, mean pooling
    and both Dense modules run, and the vector size is the last Dense module's."""
    from hanzo_mistralrs.engine import MistralRsEmbedder

    from hanzo_cli.safetensors_info import read_safetensors_info
    from tests.fixtures.safetensors_models import write_tiny_embeddinggemma_folder

    folder = write_tiny_embeddinggemma_folder(tmp_path / "gemma")
    facts = read_safetensors_info(folder)
    assert (facts.architecture, facts.pooling, facts.normalize) == ("gemma3_text", "mean", True)
    embedder = MistralRsEmbedder(folder)
    try:
        vectors = np.asarray(embedder.embed(TEXTS[:3]))
    finally:
        embedder.close()
    assert embedder.dimensions == 24 and vectors.shape == (3, 24)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert (vectors[0] @ vectors[1]) < 0.999
