"""``embedding:test``, ``rerank`` and ``embedding:pull`` as a user runs them (real CLI, subprocess)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo

HELLO, HI = "Hello world", "Hi there"


@pytest.fixture
def cli_minilm(llama_cpp: None, minilm_gguf: Path) -> str:
    """MiniLM imported the way the README says: hanzo model:import."""
    proc = run_hanzo("model:import", str(minilm_gguf), "--name", "minilm")
    assert proc.returncode == 0, proc.stderr
    return "local:minilm"


def test_embedding_test_json_gives_unit_vectors_and_a_similarity_matrix(cli_minilm: str) -> None:
    data = hanzo_json("embedding:test", HELLO, HI, "--model", cli_minilm, "--json")
    assert set(data) == {"model", "runtime", "dimensions", "embeddings", "similarity"}
    assert (data["model"], data["runtime"], data["dimensions"]) == ("local:minilm:latest", "llamacpp", 384)
    vectors = np.asarray(data["embeddings"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    sim = np.asarray(data["similarity"])
    np.testing.assert_allclose(sim, vectors @ vectors.T, atol=1e-6)
    assert sim[0][0] == pytest.approx(1.0) and 0.3 < sim[0][1] < 0.99


def test_one_text_has_no_similarity_and_dimensions_cut(cli_minilm: str) -> None:
    data = hanzo_json("embedding:test", HELLO, "-m", cli_minilm, "--dimensions", "128", "--json")
    assert set(data) == {"model", "runtime", "dimensions", "embeddings"}
    assert data["dimensions"] == 128 and len(data["embeddings"][0]) == 128
    assert np.linalg.norm(data["embeddings"][0]) == pytest.approx(1.0, abs=1e-6)


def test_human_output_shows_model_runtime_norms_latency_and_similarity(cli_minilm: str) -> None:
    proc = run_hanzo(
        "embedding:test", "A cat sits on the mat", "A kitten rests on the rug", "Stock markets fell sharply",
        "-m", cli_minilm,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "local:minilm:latest (bert, F16, mean pooling)" in out
    assert "runtime     llamacpp" in out and "dimensions  384" in out and "latency" in out
    assert out.count("norm 1.0000") == 3
    rows = out.split("cosine similarity:")[1].strip().splitlines()[1:]
    sim = [[float(x) for x in row.split()[1:]] for row in rows]
    assert sim[0][1] == pytest.approx(0.659, abs=0.01) and sim[0][2] == pytest.approx(0.054, abs=0.01)


def test_default_model_comes_from_the_environment_or_config(cli_minilm: str) -> None:
    data = hanzo_json("embedding:test", HELLO, "--json", env={"HANZO_EMBEDDING_MODEL": cli_minilm})
    assert data["model"] == "local:minilm:latest"
    assert run_hanzo("config:set", "embedding.model", cli_minilm).returncode == 0
    assert hanzo_json("embedding:test", HELLO, "--json")["model"] == "local:minilm:latest"


def test_query_on_a_model_without_instructions_warns(cli_minilm: str) -> None:
    proc = run_hanzo("embedding:test", HELLO, "-m", cli_minilm, "--query", "--json")
    assert proc.returncode == 0
    assert "Warning: local:minilm:latest takes no query instruction" in proc.stderr
    plain = hanzo_json("embedding:test", HELLO, "-m", cli_minilm, "--json")
    assert json.loads(proc.stdout)["embeddings"] == plain["embeddings"]


def test_qwen3_query_flag_changes_the_vector(llama_cpp: None, tiny_qwen3_gguf: Path, import_model) -> None:  # type: ignore[no-untyped-def]
    ref = import_model(tiny_qwen3_gguf, "tiny-qwen3")
    env = {"HANZO_PLUGINS": "llamacpp,huggingface"}  # the catalog with the Qwen3-Embedding family rule
    document = hanzo_json("embedding:test", "the cat", "-m", ref, "--json", env=env)["embeddings"][0]
    query = hanzo_json("embedding:test", "the cat", "-m", ref, "--query", "--json", env=env)["embeddings"][0]
    assert not np.allclose(document, query, atol=1e-3)


def test_bad_input_is_a_usage_error_or_one_line_error(cli_minilm: str) -> None:
    proc = run_hanzo("embedding:test", "-m", cli_minilm)
    assert proc.returncode == 2 and "Missing argument 'TEXT...'" in proc.stderr
    proc = run_hanzo("embedding:test", HELLO, "-m", cli_minilm, "--dimensions", "0")
    assert proc.returncode == 2 and "--dimensions" in proc.stderr
    proc = run_hanzo("embedding:test", HELLO, "-m", cli_minilm, "--dimensions", "385")
    assert_one_line_error(proc, "dimensions must be between 1 and 384")
    assert_one_line_error(run_hanzo("embedding:test", HELLO, "-m", "local:missing"), "cannot pull")


def test_unknown_architecture_and_forced_runtime_errors(
    llama_cpp: None, ctransformers: None, unknown_arch_gguf: Path, tiny_qwen3_gguf: Path, import_model
) -> None:  # type: ignore[no-untyped-def]
    foobar = import_model(unknown_arch_gguf, "foobar")
    assert_one_line_error(
        run_hanzo("embedding:test", HELLO, "-m", foobar),
        "architecture 'foobar'", "llamacpp: embed/rerank on", "ctransformers: embed on llama",
    )  # fmt: skip
    qwen3 = import_model(tiny_qwen3_gguf, "tiny-qwen3")
    assert_one_line_error(
        run_hanzo("embedding:test", HELLO, "-m", qwen3, "--runtime", "ctransformers"),
        "runtime 'ctransformers' cannot embed a qwen3-architecture model (embed on llama)",
    )
    assert_one_line_error(
        run_hanzo("embedding:test", HELLO, "-m", qwen3, "--runtime", "nope"), "unknown runtime"
    )


def test_no_runtime_installed_names_the_extra(tiny_qwen3_gguf: Path, import_model) -> None:  # type: ignore[no-untyped-def]
    ref = import_model(tiny_qwen3_gguf, "tiny-qwen3")
    proc = run_hanzo("embedding:test", HELLO, "-m", ref, env={"HANZO_PLUGINS": ""})
    assert_one_line_error(proc, "no runtime is installed", "pip install 'hanzo-cli[llamacpp]'")
    proc = run_hanzo("rerank", "q", "d", "-m", ref, "--runtime", "llamacpp", env={"HANZO_PLUGINS": ""})
    assert_one_line_error(proc, "unknown runtime 'llamacpp'", "pip install 'hanzo-cli[llamacpp]'")


def test_no_default_model_and_no_catalog_is_a_clear_error(llama_cpp: None) -> None:
    assert_one_line_error(run_hanzo("embedding:test", HELLO), "hanzo config:set embedding.model")
    assert_one_line_error(run_hanzo("rerank", "q", "d"), "hanzo config:set reranker.model")


def test_rerank_json_is_sorted_by_score(
    llama_cpp: None, tiny_qwen3_reranker_gguf: Path, import_model
) -> None:  # type: ignore[no-untyped-def]
    ref = import_model(tiny_qwen3_reranker_gguf, "tiny-reranker")
    docs = ["a cat is on the mat", "hello world", "yes no"]
    data = hanzo_json("rerank", "the cat", *docs, "-m", ref, "--json")
    assert set(data) == {"model", "runtime", "query", "results"}
    assert (data["model"], data["runtime"], data["query"]) == (
        "local:tiny-reranker:latest",
        "llamacpp",
        "the cat",
    )
    results = data["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert [r["document"] for r in results] == [docs[r["index"]] for r in results]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    human = run_hanzo("rerank", "the cat", *docs, "-m", ref)
    assert human.returncode == 0 and "runtime  llamacpp" in human.stdout
    assert run_hanzo("rerank", "the cat", "-m", ref).returncode == 2  # no documents


def test_embedding_pull_needs_a_provider_with_catalog_entries(llama_cpp: None) -> None:
    assert_one_line_error(
        run_hanzo("embedding:pull"),
        "no installed provider's catalog has the lightweight tier",
        "hanzo-cli[ollama]",
    )
    assert_one_line_error(
        run_hanzo("embedding:pull", "flagship", "--provider", "local"),
        "the catalog has no flagship embed model for provider 'local'",
    )
    assert run_hanzo("embedding:pull", "huge").returncode == 2


def test_a_model_not_pulled_yet_is_pulled_first(llama_cpp: None, registry, tiny_qwen3_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("hanzo_ollama") is None:
        pytest.skip("the Ollama plugin is not installed")
    registry.push_ollama_model("demo/tiny-qwen3", "v1", [("model", tiny_qwen3_gguf.read_bytes())])
    ref = f"ollama:{registry.host}/demo/tiny-qwen3:v1"
    env = {"HANZO_PLUGINS": "llamacpp,ollama"}
    first = run_hanzo("embedding:test", "the cat", "-m", ref, "--insecure", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{ref} is not pulled yet; pulling it first" in first.stderr
    assert json.loads(first.stdout)["dimensions"] == 32
    again = run_hanzo("embedding:test", "the cat", "-m", ref, "--json", env=env)
    assert again.returncode == 0 and "pulling" not in again.stderr
    assert json.loads(again.stdout)["embeddings"] == json.loads(first.stdout)["embeddings"]
