"""The plugin guide's two examples, installed as real distributions (requirements-dev.txt), run
through the real CLI; and the guide and the README show exactly their code."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import pytest

from tests.fixtures.models import write_unknown_arch
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "hanzo_webfolder/__init__.py": ROOT / "tests" / "plugin_example" / "hanzo_webfolder" / "__init__.py",
    "hanzo_hashembed/__init__.py": ROOT
    / "tests"
    / "plugin_example_runtime"
    / "hanzo_hashembed"
    / "__init__.py",
}


def code_blocks(markdown: Path) -> dict[str, str]:
    """Python blocks whose first line is ``# FILE``, by FILE."""
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", markdown.read_text(encoding="utf-8"), re.S)
    return dict(blocks)


def test_the_guide_shows_the_examples_code_exactly() -> None:
    blocks = code_blocks(ROOT / "docs" / "plugins.md")
    for name, path in EXAMPLES.items():
        assert blocks.get(name) == path.read_text(encoding="utf-8"), (
            f"docs/plugins.md's {name} differs from {path}"
        )


def test_the_readme_shows_the_provider_and_links_the_guide() -> None:
    readme = ROOT / "README.md"
    name = "hanzo_webfolder/__init__.py"
    assert code_blocks(readme).get(name) == EXAMPLES[name].read_text(encoding="utf-8")
    assert "(docs/plugins.md)" in readme.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_the_examples_import_the_public_api_only(path: Path) -> None:
    imports = re.findall(r"^\s*(?:from|import) (hanzo_cli\S*)", path.read_text(encoding="utf-8"), re.M)
    assert imports and set(imports) == {"hanzo_cli.api"}


# -- the provider ---------------------------------------------------------------------------------


def test_provider_pulls_verifies_and_lists(fileserver, isolated_env: Path) -> None:  # type: ignore[no-untyped-def]
    payload = b"GGUF" + bytes(range(256)) * 3000
    fileserver.add_file("/models/tiny.gguf", payload)
    env = {"WEBFOLDER_URL": fileserver.url("/models")}
    wrong = "0" * 64
    assert_one_line_error(run_hanzo("model:pull", "webfolder:tiny", "--sha256", wrong, env=env), "sha256")
    assert (
        hanzo_json("model:list", "--provider", "webfolder", "--json", env=env) == []
    )  # nothing half-written
    digest = hashlib.sha256(payload).hexdigest()
    pulled = hanzo_json("model:pull", "webfolder:tiny", "--sha256", digest, "--json", env=env)
    assert pulled["provider"] == "webfolder" and Path(pulled["path"]).read_bytes() == payload
    listed = hanzo_json("model:list", "--provider", "webfolder", "--json", env=env)
    assert [(m["name"], m["size"]) for m in listed] == [("tiny", len(payload))]


def test_provider_option_is_its_own(fileserver) -> None:  # type: ignore[no-untyped-def]
    env = {"WEBFOLDER_URL": fileserver.url("/models")}
    help_text = run_hanzo("model:pull", "--help", env=env).stdout
    assert re.search(r"--sha256 HEX\s+Expected sha256 of the file\.\s+\[webfolder\]", help_text), help_text
    assert_one_line_error(
        run_hanzo("model:pull", "hf:org/repo", "--sha256", "0" * 64, env=env), "--sha256", "webfolder", code=2
    )


def test_provider_missing_model_is_model_not_found(fileserver) -> None:  # type: ignore[no-untyped-def]
    env = {"WEBFOLDER_URL": fileserver.url("/models"), "HANZO_PLUGINS": "hanzo-webfolder"}
    assert_one_line_error(
        run_hanzo("model:pull", "webfolder:missing", env=env), "404", "has no model 'missing'"
    )


# -- the runtime ----------------------------------------------------------------------------------


def hashed(text: str, dimensions: int) -> list[float]:
    """The guide's feature hashing, written out again here, then L2-normalised as hanzo does."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def test_runtime_embeds_through_embedding_test(tmp_path: Path) -> None:
    model = write_unknown_arch(tmp_path / "hashdemo.gguf", arch="hashembed", name="hashdemo")
    hanzo_json("model:import", str(model), "--name", "hashdemo", "--json")
    texts = ["The cat sat", "the cat", "Stocks fell sharply"]
    result = hanzo_json(
        "embedding:test", "--runtime", "hashembed", "--model", "local:hashdemo", *texts, "--json"
    )
    assert result["runtime"] == "hashembed"
    assert result["dimensions"] == 4  # the fixture's hashembed.embedding_length
    for text, vector in zip(texts, result["embeddings"], strict=True):
        assert vector == pytest.approx(hashed(text, 4), abs=1e-6), text
    plugins = {row["name"]: row for row in hanzo_json("plugins", "--json")}
    assert plugins["hashembed"]["distribution"] == "hanzo-hashembed"
    assert plugins["hashembed"]["hooks"] == ["register_runtimes"]


def test_runtime_refuses_other_architectures(tiny_llama_gguf: Path) -> None:
    hanzo_json("model:import", str(tiny_llama_gguf), "--name", "tinyllama", "--json")
    proc = run_hanzo("embedding:test", "--runtime", "hashembed", "--model", "local:tinyllama", "hi")
    assert_one_line_error(proc, "hashembed", "llama")
