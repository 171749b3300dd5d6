"""Sharing Ollama's layout with Ollama: OLLAMA_NOPRUNE as Ollama honours it (server/images.go PullModel
skips deleteUnusedLayers; server/routes.go DeleteHandler always calls RemoveLayers), and blobs found
in place verified before they are trusted. Against a real CNCF distribution registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hanzo_ollama.provider import OllamaProvider, no_prune

from hanzo_cli.providers import PullOptions
from tests.fixtures.registry import Registry
from tests.helpers import run_hanzo


def pull(name: str) -> None:
    OllamaProvider().pull(name, PullOptions(insecure=True))


def blob_names(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").iterdir()}


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ollama-models"
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    monkeypatch.delenv("OLLAMA_NOPRUNE", raising=False)
    return root


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("1", True), ("true", True), ("yes", True), ('"1"', True)],
)
def test_noprune_is_read_as_ollamas_envconfig_bool(
    value: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_NOPRUNE", value)
    assert no_prune() is expected


@pytest.mark.parametrize("noprune", [False, True])
def test_repull_keeps_replaced_blobs_only_with_noprune(
    noprune: bool, registry: Registry, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if noprune:
        monkeypatch.setenv("OLLAMA_NOPRUNE", "1")
    old = registry.push_ollama_model("ns/m", "latest", [("model", b"GGUF old weights")])
    pull(f"{registry.host}/ns/m:latest")
    old_model = "sha256-" + old["layers"][0]["digest"].split(":")[1]
    assert old_model in blob_names(models_dir)

    registry.push_ollama_model("ns/m", "latest", [("model", b"GGUF new weights")])
    pull(f"{registry.host}/ns/m:latest")

    assert (old_model in blob_names(models_dir)) is noprune


def test_delete_prunes_even_with_noprune_as_ollama_does(
    registry: Registry, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_NOPRUNE", "1")
    registry.push_ollama_model("ns/d", "latest", [("model", b"GGUF weights to delete")])
    pull(f"{registry.host}/ns/d:latest")
    assert blob_names(models_dir)

    proc = run_hanzo("model:delete", "--yes", f"ollama:{registry.host}/ns/d:latest")

    assert proc.returncode == 0, proc.stderr
    assert blob_names(models_dir) == set()


def test_a_blob_with_the_right_name_and_wrong_bytes_is_fetched_again(
    registry: Registry, models_dir: Path
) -> None:
    data = os.urandom(64 * 1024)
    manifest = registry.push_ollama_model("ns/c", "latest", [("model", data)])
    digest = manifest["layers"][0]["digest"]
    blob = models_dir / "blobs" / ("sha256-" + digest.split(":")[1])
    blob.parent.mkdir(parents=True)
    blob.write_bytes(bytes(len(data)))  # right name and size, wrong bytes (left by another tool)

    proc = run_hanzo("model:pull", "--provider", "ollama", "--insecure", f"{registry.host}/ns/c:latest")

    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and str(blob) in warnings[0] and "fetching it again" in warnings[0]
    assert blob.read_bytes() == data
    aside = list((models_dir / ".hanzo-corrupt").iterdir())
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(len(data))
