"""Names, quants and file selection: pure functions, no server."""

from __future__ import annotations

import pytest
from hanzo_huggingface.refs import HubRef, check_object_id, check_repo_path, check_revision, parse
from hanzo_huggingface.selection import choose

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.ggufnames import gguf_models, quant_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen/Qwen3-Embedding-0.6B-GGUF", HubRef("Qwen/Qwen3-Embedding-0.6B-GGUF")),
        ("Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0", HubRef("Qwen/Qwen3-Embedding-0.6B-GGUF", quant="Q8_0")),
        ("hf.co/org/repo:q4_k_m", HubRef("org/repo", quant="q4_k_m")),
        ("HF.CO/org/repo", HubRef("org/repo")),
        ("https://huggingface.co/org/repo", HubRef("org/repo")),
        ("huggingface.co/org/repo:UD-Q4_K_XL", HubRef("org/repo", quant="UD-Q4_K_XL")),
        ("org/repo:latest", HubRef("org/repo")),
        ("org/repo@v1.0:Q8_0", HubRef("org/repo", revision="v1.0", quant="Q8_0")),
        ("org/repo/sub/model-Q8_0.gguf", HubRef("org/repo", path="sub/model-Q8_0.gguf")),
        ("org/repo@abc123/model.gguf", HubRef("org/repo", revision="abc123", path="model.gguf")),
        ("sentence-transformers/all-MiniLM-L6-v2", HubRef("sentence-transformers/all-MiniLM-L6-v2")),
    ],
)
def test_parse(text: str, expected: HubRef) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "qwen3-embedding",  # no org: an Ollama name, not ours
        "org/",
        "/repo",
        "org/re po",
        "org/..",
        "org/a..b",
        "org--x/repo",
        "org/repo/../../etc/passwd",
        "org/repo/a\\b.gguf",
        "org/repo//x.gguf",
        "org/repo:Q8/0",
        "org/repo/file.gguf:Q8_0",
        "org/repo@refs/pr/1:Q8_0",
        "http://example.com/org/repo",
        "org/" + "x" * 100,
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(HanzoError):
        parse(text)


def test_name_round_trip() -> None:
    for text in ("org/repo", "org/repo:Q8_0", "org/repo@v1:Q8_0", "org/repo@v1/a/b.gguf"):
        assert str(parse(text)) == text


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a\\..\\b", "a\x00b", "", "a/"]
)
def test_unsafe_repo_paths(path: str) -> None:
    with pytest.raises(HanzoError, match="unsafe file name"):
        check_repo_path(path)


def test_revisions_and_object_ids() -> None:
    assert check_revision("refs/pr/1") == "refs/pr/1"
    for bad in ("../main", "a/../b", "/abs", "a//b", "a b"):
        with pytest.raises(HanzoError):
            check_revision(bad)
    assert check_object_id("a" * 40, "x") == "a" * 40
    assert check_object_id("b" * 64, "x") == "b" * 64
    for bad in ("../../x", "A" * 40, "a" * 41, ""):
        with pytest.raises(HanzoError):
            check_object_id(bad, "ETag")


@pytest.mark.parametrize(
    ("path", "quant"),
    [
        ("Qwen3-Embedding-0.6B-Q8_0.gguf", "Q8_0"),
        ("qwen3-embedding-8b-f16.gguf", "F16"),
        ("Qwen3-0.6B-BF16.gguf", "BF16"),
        ("model.Q4_K_M.gguf", "Q4_K_M"),
        ("model_q5_k_s.gguf", "Q5_K_S"),
        ("qwen3-reranker-0.6b-q8_0.gguf", "Q8_0"),
        ("Qwen3-4B-UD-Q4_K_XL-00001-of-00003.gguf", "Q4_K_XL"),
        ("Model-IQ2_XXS.gguf", "IQ2_XXS"),
        ("Q8_0/Big-00001-of-00002.gguf", "Q8_0"),
        ("ggml-model.gguf", None),
        ("Qwen3-8B.gguf", None),
    ],
)
def test_quant_of(path: str, quant: str | None) -> None:
    assert quant_of(path) == quant


FILES = {
    "README.md": 10,
    "m-Q4_K_M.gguf": 400,
    "m-Q8_0.gguf": 800,
    "m-F16.gguf": 1600,
    "big/m-Q6_K-00002-of-00002.gguf": 300,
    "big/m-Q6_K-00001-of-00002.gguf": 300,
}


def test_gguf_models_group_shards() -> None:
    models = {m.label(): m for m in gguf_models(FILES)}
    assert set(models) == {"Q4_K_M", "Q8_0", "F16", "Q6_K"}
    split = models["Q6_K"]
    assert split.paths == ("big/m-Q6_K-00001-of-00002.gguf", "big/m-Q6_K-00002-of-00002.gguf")
    assert split.size == 600 and split.complete
    broken = gguf_models({"x-Q8_0-00001-of-00003.gguf": 1, "x-Q8_0-00003-of-00003.gguf": 1})
    assert len(broken) == 1 and not broken[0].complete


def test_choose_default_prefers_q8_0_then_q5_k_m_then_q4_k_m_then_smallest() -> None:
    chosen = choose(FILES, where="r")
    assert chosen.paths == ("m-Q8_0.gguf",) and chosen.default_among == "F16, Q4_K_M, Q6_K, Q8_0"
    assert choose({"a-Q4_K_M.gguf": 4, "a-Q5_K_M.gguf": 5, "a-F16.gguf": 1}, where="r").paths == (
        "a-Q5_K_M.gguf",
    )
    assert choose({"a-Q4_K_M.gguf": 4, "a-F16.gguf": 1}, where="r").paths == ("a-Q4_K_M.gguf",)
    assert choose({"a-Q6_K.gguf": 6, "a-F16.gguf": 16, "a-IQ2_M.gguf": 2}, where="r").paths == (
        "a-IQ2_M.gguf",
    )


def test_choose_by_quant_file_and_patterns() -> None:
    assert choose(FILES, quant="q4_k_m", where="r").paths == ("m-Q4_K_M.gguf",)
    assert choose(FILES, quant="Q6_K", where="r").paths == tuple(sorted(p for p in FILES if "Q6_K" in p))
    assert choose(FILES, quant="Q8_0", where="r").default_among is None
    # a shard named with --file brings its whole model
    assert len(choose(FILES, file="big/m-Q6_K-00002-of-00002.gguf", where="r").paths) == 2
    assert choose(FILES, file="README.md", where="r").paths == ("README.md",)
    assert choose(FILES, include=["*.gguf"], exclude=["big/*"], where="r").paths == (
        "m-F16.gguf",
        "m-Q4_K_M.gguf",
        "m-Q8_0.gguf",
    )
    # a repo without GGUF files: the whole snapshot
    assert choose({"config.json": 1, "model.safetensors": 2}, where="r").paths == (
        "config.json",
        "model.safetensors",
    )


def test_choose_errors() -> None:
    with pytest.raises(NotFoundError, match=r"r has no Q2_K GGUF \(available: F16, Q4_K_M, Q6_K, Q8_0\)"):
        choose(FILES, quant="Q2_K", where="r")
    with pytest.raises(NotFoundError, match=r"file 'nope\.gguf' not found in r"):
        choose(FILES, file="nope.gguf", where="r")
    with pytest.raises(NotFoundError, match="no file in r matches"):
        choose(FILES, include=["*.onnx"], where="r")
    with pytest.raises(NotFoundError, match="has no GGUF files"):
        choose({"config.json": 1}, quant="Q8_0", where="r")
    with pytest.raises(HanzoError, match="several GGUF models in r match Q8_0"):
        choose({"a-Q8_0.gguf": 1, "b-Q8_0.gguf": 1}, quant="Q8_0", where="r")
    # A vision projector is part of a model, never a model to choose.
    assert choose({"a-Q8_0.gguf": 1, "mmproj-Q8_0.gguf": 1}, quant="Q8_0", where="r").paths == (
        "a-Q8_0.gguf",
    )
    with pytest.raises(HanzoError, match="missing shards"):
        choose({"x-Q8_0-00001-of-00002.gguf": 1}, quant="Q8_0", where="r")
    with pytest.raises(HanzoError, match="only one of"):
        choose(FILES, quant="Q8_0", file="m-Q8_0.gguf", where="r")
