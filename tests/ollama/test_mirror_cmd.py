"""``hanzo model:mirror``: local models copied to a private registry (a real CNCF distribution
registry), then pulled from it by a node with an empty store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from hanzo_cli.store import Store
from tests.fixtures.registry import Registry, find_registry_binary, require_or_skip, start_registry
from tests.helpers import assert_one_line_error, run_hanzo

MiB = 1024 * 1024


def _start(where: Path) -> Registry:
    binary = find_registry_binary()
    if binary is None:
        require_or_skip("docker-registry not installed (apt-get install docker-registry)")
    return start_registry(where, binary)


def test_mirror_two_models_then_a_node_pulls_from_the_mirror(registry: Registry, tmp_path: Path) -> None:
    data = os.urandom(2 * MiB)  # the model layer both models share
    registry.push_ollama_model("ns/a", "v1", [("model", data), ("params", b'{"num_ctx": 8}')])
    registry.push_ollama_model("ns/b", "v1", [("model", data), ("params", b'{"num_ctx": 16}')])
    for name in ("a", "b"):
        assert run_hanzo("model:pull", "--insecure", f"ollama:{registry.host}/ns/{name}:v1").returncode == 0
    model = "sha256:" + hashlib.sha256(data).hexdigest()
    fleet = _start(tmp_path / "fleet")
    try:
        to = f"{fleet.host}/team"
        proc = run_hanzo(
            "model:mirror", f"ollama:{registry.host}/ns/a:v1", f"{registry.host}/ns/b:v1", "--to", to,
            "--insecure", "--json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        first, second = json.loads(proc.stdout)
        assert first["destination"] == f"{fleet.host}/team/a:v1" and model in first["uploaded"]
        # The shared layer is linked from team/a (cross-repository mount), not uploaded again.
        assert model in second["mounted"] and model not in second["uploaded"]

        # A node with an empty store pulls from the fleet's registry, verified.
        node = {"HANZO_HOME": str(tmp_path / "node")}
        proc = run_hanzo("model:pull", "--insecure", f"ollama:{fleet.host}/team/b:v1", env=node)
        assert proc.returncode == 0, proc.stderr
        node_blob = Store(tmp_path / "node" / "models").blob_path(model)
        assert node_blob.read_bytes() == data

        # Mirroring everything again sends nothing.
        proc = run_hanzo("model:mirror", "--all", "--to", to, "--insecure", "--json")
        assert proc.returncode == 0, proc.stderr
        again = json.loads(proc.stdout)
        assert len(again) == 2 and all(r["uploaded"] == [] and r["mounted"] == [] for r in again)
    finally:
        fleet.stop()


def test_a_gguf_of_another_provider_is_wrapped(
    registry: Registry, tmp_path: Path, tiny_llama_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An LM Studio GGUF becomes an Ollama-format model on the registry, which hanzo pulls back."""
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,lmstudio")
    folder = tmp_path / "lmstudio-models" / "someone" / "Tiny-GGUF"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny_llama_gguf, folder / "tiny-Q8_0.gguf")
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "lmstudio-models"))
    proc = run_hanzo(
        "model:mirror", "lmstudio:someone/Tiny-GGUF/tiny-Q8_0.gguf", "--to", f"{registry.host}/team",
        "--insecure", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    dest = result["destination"]
    assert dest.startswith(f"{registry.host}/team/")
    node = {"HANZO_HOME": str(tmp_path / "node"), "HANZO_PLUGINS": "ollama"}
    proc = run_hanzo("model:pull", "--insecure", f"ollama:{dest}", env=node)
    assert proc.returncode == 0, proc.stderr
    digest = "sha256:" + hashlib.sha256(tiny_llama_gguf.read_bytes()).hexdigest()
    assert Store(tmp_path / "node" / "models").blob_path(digest).read_bytes() == tiny_llama_gguf.read_bytes()


def test_bad_arguments_are_one_error_line(registry: Registry) -> None:
    assert_one_line_error(
        run_hanzo("model:mirror", "x", "--to", registry.host, "--insecure"), "HOST/NAMESPACE", code=2
    )
    assert_one_line_error(run_hanzo("model:mirror", "--to", f"{registry.host}/team"), "--all", code=2)
    assert_one_line_error(
        run_hanzo("model:mirror", "ollama:nothing/here:v1", "--to", f"{registry.host}/team", "--insecure"),
        "not found",
    )
