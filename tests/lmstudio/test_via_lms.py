"""model:pull --via-lms: delegating to LM Studio's `lms get` (a stand-in executable here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hanzo_lmstudio.lms import lms_get
from hanzo_lmstudio.names import ModelName

from tests.helpers import assert_one_line_error, run_hanzo
from tests.lmstudio.conftest import FakeLms, LMStudioServer


def test_pull_via_lms(lms_dir: Path, fake_lms: FakeLms, lmstudio: LMStudioServer) -> None:
    lmstudio.add("qwen3-4b@q8_0", publisher="Qwen", quantization="Q8_0")
    proc = run_hanzo("model:pull", "--provider", "lmstudio", "Qwen/Qwen3-4B-GGUF@q8_0", "--via-lms", "--json")
    assert proc.returncode == 0, proc.stderr
    assert fake_lms.calls() == [["get", "https://huggingface.co/Qwen/Qwen3-4B-GGUF@q8_0", "--yes"]]
    assert "lms: Downloaded Qwen3-4B-Q8_0.gguf\n" in proc.stderr  # its output, marked as its own
    pulled = json.loads(proc.stdout)  # ...and stdout holds only hanzo's JSON
    assert pulled["name"] == "Qwen/Qwen3-4B-GGUF/Qwen3-4B-Q8_0.gguf"
    assert pulled["path"] == str(lms_dir / "Qwen" / "Qwen3-4B-GGUF" / "Qwen3-4B-Q8_0.gguf")
    assert pulled["details"]["loaded"] is False


def test_output_relay_marks_progress_redraws(
    lms_dir: Path, fake_lms: FakeLms, capsys: pytest.CaptureFixture[str]
) -> None:
    lms_get(ModelName("Qwen", "Qwen3-4B-GGUF", quant="Q8_0"), quiet=False)
    assert capsys.readouterr().err == (
        "lms: Searching for models...\n"
        "lms: Downloading 50%\rlms: Downloading 100%\n"
        "lms: Downloaded Qwen3-4B-Q8_0.gguf\n"
    )


def test_quant_spelled_with_a_colon_and_quiet(lms_dir: Path, fake_lms: FakeLms) -> None:
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF:Q8_0", "--via-lms", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert fake_lms.calls() == [["get", "https://huggingface.co/Qwen/Qwen3-4B-GGUF@q8_0", "--yes"]]
    assert "Downloaded" not in proc.stderr


def test_model_filed_under_another_publisher_is_found(
    lms_dir: Path, fake_lms: FakeLms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LMS_TARGET", "lmstudio-community/Qwen3-4B-GGUF")
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF", "--via-lms", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "lmstudio-community/Qwen3-4B-GGUF/Qwen3-4B-Q4_K_M.gguf"


def test_lms_failure_is_one_line(lms_dir: Path, fake_lms: FakeLms, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LMS_EXIT", "3")
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF@q8_0", "--via-lms")
    assert_one_line_error(proc, "lms get", "exit code 3", "no model matched")
    assert "lms: Error: no model matched" in proc.stderr  # its own words, marked as its own
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF@q8_0", "--via-lms", "--quiet")
    assert_one_line_error(proc, "exit code 3", "no model matched")
    assert "lms: " not in proc.stderr
    assert list(lms_dir.iterdir()) == []


def test_lms_not_on_path(lms_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF@q8_0", "--via-lms")
    assert_one_line_error(proc, "--via-lms", "lms command on PATH")


def test_lms_writes_elsewhere(lms_dir: Path, fake_lms: FakeLms, monkeypatch: pytest.MonkeyPatch) -> None:
    """LM Studio configured with another folder than the one hanzo found: say so, don't guess."""
    monkeypatch.setenv("FAKE_LMS_ROOT", str(lms_dir.parent / "somewhere-else"))
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF@q8_0", "--via-lms")
    assert_one_line_error(proc, "lms get finished", str(lms_dir), "lms ls")


def test_via_lms_refuses_a_file_name(lms_dir: Path, fake_lms: FakeLms) -> None:
    proc = run_hanzo("model:pull", "lms:Qwen/Qwen3-4B-GGUF", "--via-lms", "--file", "Qwen3-4B-Q8_0.gguf")
    assert_one_line_error(proc, "--via-lms")
    assert fake_lms.calls() == []
