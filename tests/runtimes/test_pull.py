"""``embedding:pull`` picks catalog entries by tier, and a missing model is pulled before it runs.

The providers here are stand-ins registered in-process (the real ones need the internet for the
catalog's models); what is under test is hanzo's side: tiers, --reranker, and pull-then-load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from click.testing import CliRunner

from hanzo_cli import plugins
from hanzo_cli.catalog import CatalogEntry
from hanzo_cli.cli import cli
from hanzo_cli.embedding import load_embedding_model
from hanzo_cli.hookspecs import hookimpl
from hanzo_cli.providers import ModelInfo, Provider, PullOptions


class FileProvider(Provider):
    """Pulls by copying files from a folder; remembers what it was asked for."""

    name = "files"

    def __init__(self, source: Path, dest: Path) -> None:
        self.source, self.dest, self.pulled = source, dest, []

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        self.pulled.append(name)
        self.dest.mkdir(exist_ok=True)
        target = self.dest / name
        target.write_bytes((self.source / name).read_bytes())
        return ModelInfo(self.name, name, size=target.stat().st_size, path=target)

    def list(self) -> Iterable[ModelInfo]:
        if not self.dest.is_dir():
            return []
        return [ModelInfo(self.name, p.name, size=p.stat().st_size, path=p) for p in self.dest.iterdir()]


class FilesPlugin:
    def __init__(self, provider: Provider, entries: list[CatalogEntry]) -> None:
        self.provider, self.entries = provider, entries

    @hookimpl
    def register_providers(self, register: Callable[[Provider], None]) -> None:
        register(self.provider)

    @hookimpl
    def register_models(self, register: Callable[[CatalogEntry], None]) -> None:
        for entry in self.entries:
            register(entry)


TIERS = [
    ("qwen3-embedding-8b", "embed", "flagship"),
    ("qwen3-embedding-4b", "embed", "balanced"),
    ("qwen3-embedding-0.6b", "embed", "lightweight"),
    ("qwen3-reranker-4b", "rerank", "primary"),
    ("qwen3-reranker-0.6b", "rerank", "lightweight"),
]


@pytest.fixture
def files_provider(tmp_path: Path, tiny_qwen3_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> FileProvider:
    source = tmp_path / "source"
    source.mkdir()
    for alias, _, _ in TIERS:
        (source / f"{alias}.gguf").write_bytes(tiny_qwen3_gguf.read_bytes())
    provider = FileProvider(source, tmp_path / "pulled")
    entries = [
        CatalogEntry(alias, "files", f"{alias}.gguf", task=task, tier=tier) for alias, task, tier in TIERS
    ]
    monkeypatch.setenv("HANZO_PLUGINS", "llamacpp")
    plugins.reset_for_tests()
    plugins.load_plugins()
    plugins.pm.register(FilesPlugin(provider, entries), name="files")
    return provider


@pytest.mark.parametrize(
    ("args", "pulled"),
    [
        ([], ["qwen3-embedding-0.6b.gguf"]),
        (["flagship"], ["qwen3-embedding-8b.gguf"]),
        (["balanced", "--reranker"], ["qwen3-embedding-4b.gguf", "qwen3-reranker-4b.gguf"]),
        (["lightweight", "--reranker"], ["qwen3-embedding-0.6b.gguf", "qwen3-reranker-0.6b.gguf"]),
    ],
)
def test_embedding_pull_pulls_the_tier(
    files_provider: FileProvider, args: list[str], pulled: list[str]
) -> None:
    result = CliRunner().invoke(cli, ["embedding:pull", *args, "--provider", "files"])
    assert result.exit_code == 0, result.output
    assert files_provider.pulled == pulled
    if args and args[0] == "flagship":
        assert "hanzo config:set embedding.model qwen3-embedding-8b" in result.output


def test_default_embedding_model_is_the_lightweight_alias_pulled_when_missing(
    files_provider: FileProvider, llama_cpp: None, capsys: pytest.CaptureFixture[str]
) -> None:
    model = load_embedding_model()  # no setting: the catalog's lightweight embedding model
    try:
        assert model.name == "files:qwen3-embedding-0.6b.gguf" and model.dimensions == 32
        assert "qwen3-embedding-0.6b is not pulled yet; pulling it first" in capsys.readouterr().err
        assert len(model.embed(["the cat"])[0]) == 32
    finally:
        model.close()
    load_embedding_model().close()  # now on disk: not pulled again
    assert files_provider.pulled == ["qwen3-embedding-0.6b.gguf"]
