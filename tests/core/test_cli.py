"""The CLI surface: help, version, errors, plugins, and the model:* round trip on the local store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo

HEAVY = (
    "httpx",
    "tqdm",
    "huggingface_hub",
    "llama_cpp",
    "ctransformers",
    "numpy",
    "gguf",
    "starlette",
    "uvicorn",
)


def test_version_and_help() -> None:
    proc = run_hanzo("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("hanzo, version ")
    proc = run_hanzo("--help")
    assert proc.returncode == 0
    for command in ("model:pull", "model:list", "model:show", "model:delete", "model:import", "plugins"):
        assert command in proc.stdout


def test_every_command_has_help() -> None:
    proc = run_hanzo("--help")
    commands = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert len(commands) >= 8
    for command in commands:
        sub = run_hanzo(command, "--help")
        assert sub.returncode == 0, (command, sub.stderr)
        assert "Usage: hanzo " + command in sub.stdout


def test_help_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from hanzo_cli.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print("HEAVY:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:", f"imported at --help: {proc.stdout}"


def test_usage_error_exits_2() -> None:
    proc = run_hanzo("model:pull")
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_unknown_reference_names_providers_tried() -> None:
    assert_one_line_error(run_hanzo("model:show", "nope-model"), "not pulled")
    assert_one_line_error(run_hanzo("model:pull", "local:x"), "cannot pull")


def test_missing_plugin_names_the_extra() -> None:
    env = {"HANZO_PLUGINS": ""}
    assert_one_line_error(
        run_hanzo("model:pull", "hf:org/repo", env=env), "pip install 'hanzo-cli[huggingface]'"
    )
    assert_one_line_error(run_hanzo("model:list", "--provider", "lms", env=env), "hanzo-cli[lmstudio]")
    assert_one_line_error(run_hanzo("model:push", "a", "b", env=env), "hanzo-cli[ollama]")
    assert_one_line_error(run_hanzo("model:pull", "some-model", env=env), "hanzo-cli[all]")


def test_plugins_json_lists_installed_plugins() -> None:
    data = hanzo_json("plugins", "--json")
    names = {row["name"]: row for row in data}
    assert names["webfolder"]["distribution"] == "hanzo-webfolder"
    assert names["webfolder"]["hooks"] == ["register_providers"]
    assert all(not row["builtin"] for row in data)
    everything = hanzo_json("plugins", "--json", "--all")
    assert {"local", "model", "config"} <= {row["name"] for row in everything}
    assert hanzo_json("plugins", "--json", env={"HANZO_PLUGINS": ""}) == []
    only = hanzo_json("plugins", "--json", env={"HANZO_PLUGINS": "hanzo-webfolder"})
    assert [row["name"] for row in only] == ["webfolder"]


def _fake_distribution(site: Path, module: str, source: str) -> None:
    """A real (if minimal) installed distribution with a ``hanzo`` entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hanzo]\n{module} = {module}\n")


def test_misspelled_hook_fails_loudly(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        "typo_plugin",
        """
        from hanzo_cli import hookimpl

        @hookimpl
        def register_provider(register):  # missing "s"
            pass
        """,
    )
    proc = run_hanzo("model:list", env={"PYTHONPATH": str(tmp_path)})
    assert_one_line_error(proc, "typo_plugin", "register_provider")


def test_broken_plugin_is_skipped_with_a_warning(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "broken_plugin", "raise ImportError('no such lib')\n")
    proc = run_hanzo("model:list", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0
    assert "broken_plugin" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_import_list_show_delete_round_trip(tiny_gguf: Path, isolated_env: Path) -> None:
    imported = hanzo_json("model:import", str(tiny_gguf), "--name", "team/tiny:v1", "--json")
    assert imported["provider"] == "local" and imported["name"] == "team/tiny:v1"
    assert Path(imported["path"]).read_bytes() == tiny_gguf.read_bytes()

    listed = hanzo_json("model:list", "--json")
    assert [(m["provider"], m["name"]) for m in listed] == [("local", "team/tiny:v1")]
    row = listed[0]
    assert set(row) >= {"provider", "name", "digest", "size", "path", "modified_at"}
    assert row["digest"].startswith("sha256:") and row["size"] > tiny_gguf.stat().st_size

    shown = hanzo_json("model:show", "local:team/tiny:v1", "--json")
    assert shown["gguf"]["architecture"] == "llama"
    assert shown["gguf"]["context_length"] == 256 and shown["gguf"]["embedding_length"] == 8
    assert shown["gguf"]["file_type"] == "F16" and shown["gguf"]["parameter_count"] == 128
    human = run_hanzo("model:show", "team/tiny:v1")
    assert "architecture" in human.stdout and "llama" in human.stdout

    assert_one_line_error(run_hanzo("model:delete", "team/tiny:v1"), "--yes")
    proc = run_hanzo("model:delete", "team/tiny:v1", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert hanzo_json("model:list", "--json") == []
    store = isolated_env / "hanzo" / "models"
    assert list((store / "blobs").iterdir()) == []
    assert_one_line_error(run_hanzo("model:delete", "team/tiny:v1", "--yes"), "not found")


def test_import_refuses_non_gguf_and_keeps_store_clean(tmp_path: Path, isolated_env: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a gguf")
    assert_one_line_error(run_hanzo("model:import", str(bogus), "--name", "x"), "not a GGUF")
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00\xff")
    assert_one_line_error(run_hanzo("model:import", str(truncated), "--name", "x"), "GGUF")
    assert_one_line_error(run_hanzo("model:import", str(bogus), "--name", "../../etc/x"), "invalid")
    assert not (isolated_env / "hanzo" / "models" / "manifests").exists()


def test_reimport_replaces_and_collects_old_blob(tiny_gguf: Path, tmp_path: Path, isolated_env: Path) -> None:
    first = hanzo_json("model:import", str(tiny_gguf), "--name", "tiny", "--json")
    other = tmp_path / "other.gguf"
    other.write_bytes(tiny_gguf.read_bytes() + b"\0" * 32)
    second = hanzo_json("model:import", str(other), "--name", "tiny", "--json")
    assert first["path"] != second["path"]
    assert not Path(first["path"]).exists() and Path(second["path"]).exists()


def test_config_set_get(isolated_env: Path) -> None:
    assert_one_line_error(run_hanzo("config:get", "embedding.model"), "not set")
    assert run_hanzo("config:set", "embedding.model", "local:tiny").returncode == 0
    assert run_hanzo("config:get", "embedding.model").stdout.strip() == "local:tiny"
    env = {"HANZO_EMBEDDING_MODEL": "qwen3-embedding-8b"}
    assert run_hanzo("config:get", "embedding.model", env=env).stdout.strip() == "qwen3-embedding-8b"
    assert_one_line_error(run_hanzo("config:set", "nope", "x"), "unknown setting")
    config = json.loads((isolated_env / "hanzo" / "config.json").read_text())
    assert config == {"embedding.model": "local:tiny"}


def test_third_party_plugin_pulls_through_core_downloader(fileserver, isolated_env: Path) -> None:  # type: ignore[no-untyped-def]
    payload = b"GGUF" + bytes(range(256)) * 4000
    fileserver.add_file("/models/tiny.gguf", payload)
    env = {"WEBFOLDER_URL": fileserver.url("/models")}
    pulled = hanzo_json("model:pull", "webfolder:tiny", "--json", env=env)
    assert pulled["provider"] == "webfolder" and Path(pulled["path"]).read_bytes() == payload
    listed = hanzo_json("model:list", "--provider", "webfolder", "--json", env=env)
    assert [m["name"] for m in listed] == ["tiny"]
    assert_one_line_error(run_hanzo("model:pull", "webfolder:missing", env=env), "404")


def test_corrupt_manifest_hides_nothing_and_can_be_deleted(tiny_gguf: Path, isolated_env: Path) -> None:
    hanzo_json("model:import", str(tiny_gguf), "--name", "team/a:v1", "--json")
    hanzo_json("model:import", str(tiny_gguf), "--name", "team/b:v1", "--json")
    manifest = isolated_env / "hanzo" / "models" / "manifests" / "local" / "team" / "a" / "v1"
    manifest.write_text("{bad")
    proc = run_hanzo("model:list", "--json")
    assert proc.returncode == 0 and "skipping" in proc.stderr
    assert [m["name"] for m in json.loads(proc.stdout)] == ["team/b:v1"]
    assert hanzo_json("model:import", str(tiny_gguf), "--name", "team/a:v1", "--json")["name"] == "team/a:v1"
    manifest.write_text("{bad")
    proc = run_hanzo("model:delete", "team/a:v1", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not manifest.exists()
    assert [m["name"] for m in hanzo_json("model:list", "--json")] == ["team/b:v1"]


def test_an_option_the_provider_does_not_take_is_refused() -> None:
    # The reproduction: --file and --include belong to other providers than ollama.
    proc = run_hanzo("model:pull", "--provider", "ollama", "some/model:tag", "--file", "x")
    fragment = "--file is not an option of provider ollama (it is taken by: huggingface, lmstudio)"
    assert_one_line_error(proc, fragment, code=2)
    proc = run_hanzo("model:pull", "--provider", "huggingface", "org/repo", "--native")
    fragment = "--native is not an option of provider huggingface (it is taken by: ollama)"
    assert_one_line_error(proc, fragment, code=2)


def test_pull_help_names_the_providers_of_each_option() -> None:
    text = run_hanzo("model:pull", "--help").stdout
    flat = " ".join(text.split())
    assert "[huggingface, lmstudio]" in flat  # --file and --revision are shared
    assert "[ollama]" in flat and "[lmstudio]" in flat


def test_errors_know_nothing_of_click() -> None:
    code = "import sys, hanzo_cli.errors, hanzo_cli.store, hanzo_cli.providers, hanzo_cli.gguf_info\n"
    code += "import hanzo_cli.download, hanzo_cli.download.engine, hanzo_cli.download.transfer\n"
    code += "print('click' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
