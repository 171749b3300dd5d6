"""model:list and model:show over a temp LM Studio folder, with and without a running LM Studio."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hanzo_lmstudio.provider import LMStudioProvider

from tests.fixtures.models import fake_gguf_with_file_type
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.lmstudio.conftest import LMStudioServer, put

EMB = "Qwen/Qwen3-Embedding-0.6B-GGUF"


@pytest.fixture
def library(lms_dir: Path, tiny_qwen3_gguf: Path, tiny_llama_gguf: Path) -> Path:
    """Two quants of one repo with a projector, a split model, and what must not be listed."""
    put(lms_dir, f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf", tiny_qwen3_gguf)
    put(lms_dir, f"{EMB}/Qwen3-Embedding-0.6B-f16.gguf", tiny_qwen3_gguf)
    put(lms_dir, f"{EMB}/mmproj-Qwen3-f16.gguf", tiny_llama_gguf)
    put(lms_dir, "bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf", tiny_llama_gguf)
    put(lms_dir, "bartowski/Big-GGUF/Big-Q4_K_M-00002-of-00002.gguf", tiny_llama_gguf)
    put(lms_dir, "loose.gguf", tiny_llama_gguf)  # not two levels down: LM Studio ignores it too
    put(lms_dir, "org/only-one-level.gguf", tiny_llama_gguf)
    put(lms_dir, "org/repo/deeper/nested.gguf", tiny_llama_gguf)
    put(lms_dir, "org/repo/.hidden.gguf", tiny_llama_gguf)
    (lms_dir / "org" / "repo" / "README.md").write_text("hello")
    (lms_dir / "org" / "repo" / "x-Q8_0.gguf.partial").write_bytes(b"GGUF")
    return lms_dir


def test_list_groups_shards_and_projectors(library: Path) -> None:
    rows = {m.name: m for m in LMStudioProvider().list()}
    assert list(rows) == [  # sorted case-insensitively
        "bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf",
        f"{EMB}/Qwen3-Embedding-0.6B-f16.gguf",
        f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf",
    ]
    q8 = rows[f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf"]
    assert q8.path == library / EMB / "Qwen3-Embedding-0.6B-Q8_0.gguf"
    assert [f.kind for f in q8.files] == ["model", "projector"]
    assert q8.size == sum(f.path.stat().st_size for f in q8.files)
    assert q8.digest is None
    assert q8.details["quantization"] == "Q8_0"
    assert q8.details["publisher"] == "Qwen"
    assert "loaded" not in q8.details  # no LM Studio answering: state unknown, not "not loaded"
    big = rows["bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf"]
    assert [f.kind for f in big.files] == ["model", "shard"]
    assert big.details["shards"] == 2
    assert big.details["quantization"] == "Q4_K_M"


def test_quant_from_gguf_header_when_the_name_has_none(lms_dir: Path) -> None:
    fake_gguf_with_file_type(_mkdir(lms_dir / "org" / "repo") / "model.gguf", file_type="Q5_K_M")
    (info,) = LMStudioProvider().list()
    assert info.details["quantization"] == "Q5_K_M"
    assert LMStudioProvider().get("org/repo:q5_k_m") == info


def test_missing_shards_are_flagged(lms_dir: Path, tiny_llama_gguf: Path) -> None:
    put(lms_dir, "org/repo/M-Q8_0-00001-of-00003.gguf", tiny_llama_gguf)
    put(lms_dir, "org/repo/M-Q8_0-00003-of-00003.gguf", tiny_llama_gguf)
    (info,) = LMStudioProvider().list()
    assert info.details["complete"] is False


def test_symlinks_leaving_the_folder_are_not_listed(
    lms_dir: Path, tmp_path: Path, tiny_llama_gguf: Path
) -> None:
    outside = tmp_path / "elsewhere"
    put(outside, "repo/secret-Q8_0.gguf", tiny_llama_gguf)
    (lms_dir / "evil").mkdir()
    (lms_dir / "evil" / "repo").symlink_to(outside / "repo")
    put(lms_dir, "org/repo/ok-Q8_0.gguf", tiny_llama_gguf)
    (lms_dir / "org" / "repo" / "link-Q4_0.gguf").symlink_to(outside / "repo" / "secret-Q8_0.gguf")
    assert [m.name for m in LMStudioProvider().list()] == ["org/repo/ok-Q8_0.gguf"]


def test_get_by_file_quant_or_folder(library: Path) -> None:
    p = LMStudioProvider()
    q8 = f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf"
    for name in (q8, q8.lower(), f"{EMB}:Q8_0", f"{EMB}@q8_0", f"{EMB.lower()}:q8_0"):
        found = p.get(name)
        assert found is not None and found.name == q8, name
    assert p.get("bartowski/Big-GGUF").name == "bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf"  # type: ignore[union-attr]
    assert p.get(f"{EMB}:Q4_K_M") is None
    assert p.get("nobody/nothing") is None
    assert p.get("not a name") is None


def test_list_and_show_on_the_command_line(library: Path) -> None:
    rows = hanzo_json("model:list", "--provider", "lmstudio", "--json")
    assert {r["provider"] for r in rows} == {"lmstudio"}
    assert len(rows) == 3
    shown = hanzo_json("model:show", f"lms:{EMB}:Q8_0", "--json")
    assert shown["name"] == f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf"
    assert shown["gguf"]["architecture"] == "qwen3"  # read from the file's header
    text = run_hanzo("model:show", f"lmstudio:{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf")
    assert text.returncode == 0, text.stderr
    assert "projector" in text.stdout and "architecture" in text.stdout


def test_ambiguous_and_missing_names_are_one_line_errors(library: Path) -> None:
    assert_one_line_error(run_hanzo("model:show", f"lms:{EMB}"), "several", "Q8_0", "f16")
    assert_one_line_error(run_hanzo("model:show", "lms:nobody/nothing:Q8_0"), "not pulled")


def test_loaded_state_from_lm_studio(library: Path, lmstudio: LMStudioServer) -> None:
    lmstudio.add(
        "qwen3-embedding-0.6b@q8_0",
        state="loaded",
        type="embeddings",
        publisher="Qwen",
        quantization="Q8_0",
        max_context_length=32768,
    )
    lmstudio.add("qwen3-embedding-0.6b@f16", publisher="Qwen", quantization="F16")
    lmstudio.add(
        "qwen3-embedding-0.6b", state="loaded", compatibility_type="mlx", publisher="Qwen"
    )  # not a GGUF
    rows = {m.name: m for m in LMStudioProvider().list()}
    q8 = rows[f"{EMB}/Qwen3-Embedding-0.6B-Q8_0.gguf"].details
    assert q8["loaded"] is True
    assert q8["lmstudio_id"] == "qwen3-embedding-0.6b@q8_0"
    assert q8["lmstudio_type"] == "embeddings"
    assert q8["lmstudio_max_context_length"] == 32768
    assert rows[f"{EMB}/Qwen3-Embedding-0.6B-f16.gguf"].details["loaded"] is False
    assert rows["bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf"].details["loaded"] is False
    assert lmstudio.requests() == 1  # one question per listing, not one per model


def test_lm_studio_keys_match_files(lms_dir: Path, lmstudio: LMStudioServer, tiny_llama_gguf: Path) -> None:
    """The key spellings LM Studio uses: plain, publisher/key, text-embedding-…, @quant."""
    put(
        lms_dir,
        "lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        tiny_llama_gguf,
    )
    put(lms_dir, "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q4_K_M.gguf", tiny_llama_gguf)
    put(
        lms_dir,
        "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
        tiny_llama_gguf,
    )
    put(
        lms_dir,
        "other/Meta-Llama-3.1-8B-Instruct-GGUF/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        tiny_llama_gguf,
    )
    lmstudio.add(
        "meta-llama-3.1-8b-instruct", state="loaded", publisher="lmstudio-community", quantization="Q4_K_M"
    )
    lmstudio.add(
        "text-embedding-nomic-embed-text-v1.5", state="loaded", type="embeddings", publisher="nomic-ai"
    )
    lmstudio.add("unsloth/deepseek-r1-distill-qwen-1.5b", state="loaded")
    loaded = {m.name.split("/")[0]: m.details["loaded"] for m in LMStudioProvider().list()}
    assert loaded == {"lmstudio-community": True, "nomic-ai": True, "unsloth": True, "other": False}


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"<html>not json</html>"), (200, b'{"data": "nope"}'), (500, b"boom"), (401, b"{}")],
)
def test_a_confused_server_means_unknown_state(
    library: Path, lmstudio: LMStudioServer, status: int, body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    lmstudio.status, lmstudio.body = status, body
    rows = list(LMStudioProvider().list())
    assert rows and all("loaded" not in r.details for r in rows)
    warning = capsys.readouterr().err
    assert "loaded state unknown" in warning
    if status == 401:
        assert "LMSTUDIO_API_TOKEN" in warning


def test_api_token_is_sent(library: Path, lmstudio: LMStudioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTUDIO_API_TOKEN", "sekret")
    list(LMStudioProvider().list())
    (request,) = lmstudio.server.requests_for("/api/v0/models")
    assert request.headers["authorization"] == "Bearer sekret"


def test_host_without_scheme(
    library: Path, lmstudio: LMStudioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSTUDIO_HOST", lmstudio.url.removeprefix("http://"))
    assert all("loaded" in m.details for m in LMStudioProvider().list())


def test_empty_or_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "does-not-exist"))
    assert list(LMStudioProvider().list()) == []
    assert hanzo_json("model:list", "--provider", "lms", "--json") == []


def test_default_folder_is_under_home(tiny_llama_gguf: Path) -> None:
    put(Path(os.environ["HOME"]) / ".lmstudio" / "models", "org/repo/m-Q8_0.gguf", tiny_llama_gguf)
    assert [m.name for m in LMStudioProvider().list()] == ["org/repo/m-Q8_0.gguf"]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
