"""A safetensors Qwen3-Embedding repo from ``model:pull`` to ``embedding:test`` and the node, with no
GGUF involved: the tiny folder is served by olah (a real Hub stand-in) as ``Qwen/Qwen3-Embedding-0.6B``,
beside the other formats such repos carry, and pulled, shown and embedded by the real ``hanzo``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fixtures.olah import Olah, unique_repo_id
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.runtimes.conftest import require

pytest_plugins = ["tests.fixtures.safetensors_models"]

REPO = "Qwen/Qwen3-Embedding-0.6B"  # the catalog's lightweight safetensors entry
TEXTS = ["Hello world", "The cat is on the mat.", "Gravity attracts two bodies."]
QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query"
#: What else such repos carry (ONNX, OpenVINO, TF, Flax, training state, docs): never pulled by default.
OTHER_FORMATS = {
    "onnx/model.onnx": b"onnx",
    "onnx/model_quantized.onnx": b"onnx-q",
    "openvino/openvino_model.xml": b"<xml/>",
    "openvino/openvino_model.bin": b"ov",
    "tf_model.h5": b"h5",
    "flax_model.msgpack": b"flax",
    "optimizer.pt": b"adam",
    "training_args.bin": b"args",
    "README.md": b"# tiny\n",
}


@pytest.fixture(autouse=True)
def plugins_for_safetensors(monkeypatch: pytest.MonkeyPatch) -> None:
    require("mistralrs")
    require("hanzo_mistralrs")
    require("hanzo_huggingface")
    monkeypatch.setenv("HANZO_PLUGINS", "huggingface,llamacpp,mistralrs")


def model_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def served(olah: Olah, tiny_qwen3_folder: Path) -> dict[str, Path]:
    """``Qwen/Qwen3-Embedding-0.6B`` on olah: the tiny model and other formats; returns the model files."""
    files = model_files(tiny_qwen3_folder)
    olah.make_repo(REPO, {**files, **OTHER_FORMATS})
    return files


@pytest.fixture
def endpoint(olah: Olah, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    return olah.endpoint


def llama_cpp_reference(gguf: Path, texts: list[str]) -> np.ndarray:
    """The same weights run by llama.cpp: unit vectors."""
    require("llama_cpp")
    from hanzo_llamacpp.engine import LlamaEmbedder

    embedder = LlamaEmbedder(gguf, "last")
    try:
        rows = np.asarray(embedder.embed(texts), dtype=np.float64)
    finally:
        embedder.close()
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def test_pull_fetches_the_runtime_files_and_show_reads_them(
    endpoint: str, served: dict[str, Path], tiny_qwen3_folder: Path
) -> None:
    pulled = hanzo_json("model:pull", f"hf:{REPO}", "--json")

    snapshot = Path(pulled["path"])
    assert snapshot.is_dir()
    assert {Path(f["path"]).relative_to(snapshot).as_posix() for f in pulled["files"]} == set(served)
    for path, source in served.items():
        assert (snapshot / path).read_bytes() == source.read_bytes(), path

    shown = hanzo_json("model:show", f"hf:{REPO}", "--json")
    config = json.loads((tiny_qwen3_folder / "config.json").read_text())
    from safetensors.numpy import load_file

    parameters = sum(t.size for t in load_file(str(tiny_qwen3_folder / "model.safetensors")).values())
    facts = shown["safetensors"]
    assert shown["gguf"] is None
    assert facts["architecture"] == "qwen3" and facts["architectures"] == ["Qwen3ForCausalLM"]
    assert (facts["hidden_size"], facts["layers"], facts["vocab_size"]) == (32, 2, config["vocab_size"])
    assert (facts["dtype"], facts["parameter_count"]) == ("F32", parameters)
    assert (facts["pooling"], facts["normalize"], facts["missing"]) == ("last", True, [])

    human = run_hanzo("model:show", f"hf:{REPO}")
    assert human.returncode == 0, human.stderr
    assert f"parameters      {parameters:,}" in human.stdout
    assert "pooling         last, normalized" in human.stdout

    # --include still overrides the default selection
    onnx = hanzo_json("model:pull", f"hf:{REPO}", "--include", "onnx/*", "--json")
    assert sorted(Path(f["path"]).name for f in onnx["files"]) == ["model.onnx", "model_quantized.onnx"]


def test_embedding_test_picks_mistralrs_and_agrees_with_llama_cpp(
    endpoint: str, served: dict[str, Path], tiny_qwen3_twin_gguf: Path
) -> None:
    result = hanzo_json("embedding:test", "--model", f"hf:{REPO}", "--json", *TEXTS)

    assert result["runtime"] == "mistralrs" and result["dimensions"] == 32
    vectors = np.asarray(result["embeddings"])
    cosines = (vectors * llama_cpp_reference(tiny_qwen3_twin_gguf, TEXTS)).sum(axis=1)
    assert cosines.min() >= 0.999, cosines

    # queries get the catalog's Qwen3-Embedding instruction, as with the GGUF
    queries = hanzo_json("embedding:test", "-m", f"hf:{REPO}", "--query", "--json", TEXTS[2])
    prefixed = [f"Instruct: {QUERY_TASK}\nQuery:{TEXTS[2]}"]
    cosine = float(np.dot(queries["embeddings"][0], llama_cpp_reference(tiny_qwen3_twin_gguf, prefixed)[0]))
    assert cosine >= 0.999

    human = run_hanzo("embedding:test", "-m", f"hf:{REPO}", "--runtime", "mistralrs", TEXTS[0])
    assert human.returncode == 0, human.stderr
    assert "qwen3, F32, safetensors, last pooling" in human.stdout
    assert "runtime     mistralrs" in human.stdout
    assert human.stderr == ""  # mistral.rs's own logging stays off the terminal


def test_embedding_pull_format_safetensors_uses_the_catalog(endpoint: str, served: dict[str, Path]) -> None:
    proc = run_hanzo("embedding:pull", "--format", "safetensors", "-q")
    assert proc.returncode == 0, proc.stderr

    listed = hanzo_json("model:list", "--json")
    assert [m["name"] for m in listed] == [REPO]
    result = hanzo_json("embedding:test", "-m", "qwen3-embedding-0.6b-safetensors", "--json", "x")
    assert result["runtime"] == "mistralrs" and result["model"] == f"huggingface:{REPO}"


def test_errors_name_the_architecture_the_runtimes_and_the_missing_files(
    endpoint: str, olah: Olah, served: dict[str, Path], tiny_qwen3_twin_gguf: Path
) -> None:
    hanzo_json("model:pull", f"hf:{REPO}", "--json")
    assert_one_line_error(
        run_hanzo("rerank", "-m", f"hf:{REPO}", "query", "document"),
        "no installed runtime can rerank a safetensors model of architecture 'qwen3'",
    )
    imported = run_hanzo("model:import", str(tiny_qwen3_twin_gguf), "--name", "twin")
    assert imported.returncode == 0, imported.stderr
    assert_one_line_error(
        run_hanzo("embedding:test", "-m", "local:twin", "--runtime", "mistralrs", "x"),
        "runtime 'mistralrs' cannot embed a qwen3-architecture model",
        "runtimes that can: llamacpp",
    )

    broken = unique_repo_id("tiny-broken")
    files = {p: s for p, s in served.items() if p != "tokenizer.json"}
    olah.make_repo(broken, files)
    hanzo_json("model:pull", f"hf:{broken}", "--json")
    assert_one_line_error(
        run_hanzo("embedding:test", "-m", f"hf:{broken}", "x"), "is incomplete", "lacks tokenizer.json"
    )

    bad_pooling = unique_repo_id("tiny-bad-pooling")
    olah.make_repo(bad_pooling, {**served, "1_Pooling/config.json": b'{"pooling_mode_lasttoken": tru'})
    hanzo_json("model:pull", f"hf:{bad_pooling}", "--json")
    for command in (("embedding:test", "-m", f"hf:{bad_pooling}", "x"), ("model:show", f"hf:{bad_pooling}")):
        assert_one_line_error(run_hanzo(*command), "1_Pooling/config.json is malformed")

    bert = unique_repo_id("tiny-bert")
    config = json.loads(served["config.json"].read_text())
    olah.make_repo(bert, {**served, "config.json": json.dumps({**config, "model_type": "bert"}).encode()})
    hanzo_json("model:pull", f"hf:{bert}", "--json")
    assert_one_line_error(
        run_hanzo("embedding:test", "-m", f"hf:{bert}", "x"),
        "no installed runtime can embed a safetensors model of architecture 'bert'",
        "mistralrs: embed on safetensors gemma3_text, qwen3",
    )


@pytest.fixture
def node(endpoint: str, served: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    """The built-in node serving the pulled safetensors model (mistral.rs) on a free port."""
    from hanzo_cli.builtin.node.state import free_port

    hanzo_json("model:pull", f"hf:{REPO}", "--json")
    port = free_port()
    log = tmp_path / "node.log"
    argv = ["--model", f"hf:{REPO}", "--name", "qwen3-st", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hanzo_cli.builtin.node.server", *argv],
            env={**os.environ, "HANZO_NODE_API_KEY": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        from tests.node.conftest import wait_healthy

        try:
            wait_healthy(url, process)
        except AssertionError:
            raise AssertionError(log.read_text()) from None
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_node_serves_the_safetensors_model(node: str, tiny_qwen3_twin_gguf: Path) -> None:
    openai = httpx.post(node + "/v1/embeddings", json={"model": "qwen3-st", "input": TEXTS}, timeout=30)
    ollama = httpx.post(node + "/api/embed", json={"model": "qwen3-st", "input": TEXTS}, timeout=30)
    assert openai.status_code == ollama.status_code == 200, (openai.text, ollama.text)

    reference = llama_cpp_reference(tiny_qwen3_twin_gguf, TEXTS)
    for vectors in ([row["embedding"] for row in openai.json()["data"]], ollama.json()["embeddings"]):
        cosines = (np.asarray(vectors) * reference).sum(axis=1)
        assert cosines.min() >= 0.999, cosines


def test_hanzo_plugins_lists_the_runtime() -> None:
    listed = {p["name"]: p for p in hanzo_json("plugins", "--json")}
    assert listed["mistralrs"]["distribution"] == "hanzo-mistralrs"
    assert listed["mistralrs"]["hooks"] == ["register_runtimes"]


def test_runtime_files_of_transformers_repos() -> None:
    from hanzo_huggingface.selection import runtime_files

    sharded = {
        "config.json": 1,
        "model-00001-of-00002.safetensors": 1,
        "model-00002-of-00002.safetensors": 1,
        "model.safetensors.index.json": 1,
        "pytorch_model.bin": 1,  # an older copy of the same weights
        "tokenizer.json": 1,
        "2_Dense/config.json": 1,
        "2_Dense/model.safetensors": 1,
        "onnx/model.onnx": 1,
        "consolidated.safetensors": 1,  # Mistral's own layout, a duplicate of the shards
        "runs/events.out": 1,
    }
    assert runtime_files(sharded) == (
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    )
    # PyTorch weights only when there are no safetensors; a repo that is no model is pulled whole
    assert runtime_files({"config.json": 1, "pytorch_model.bin": 1, "flax_model.msgpack": 1}) == (
        "config.json",
        "pytorch_model.bin",
    )
    assert runtime_files({"README.md": 1, "data.csv": 1}) == ()
    assert runtime_files({"config.json": 1, "model.safetensors.index.json": 1}) == ()
