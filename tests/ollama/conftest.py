"""Fixtures of the Ollama provider tests.

- ``ollama_api``: the loopback Ollama-API server of ``fake_ollama.py``, with ``OLLAMA_HOST`` set to it.
- ``cdn_registry``: a real CNCF distribution registry whose blob GETs answer 307 to the
  ``fileserver`` fixture, as registry.ollama.ai redirects to its CDN. The file server serves the
  registry's own blob files, so a test can slow a blob down, corrupt it, or count its requests
  while manifests and redirects stay the real registry's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fileserver import FileServer, ServedFile
from tests.fixtures.registry import Registry, find_registry_binary, require_or_skip, start_registry
from tests.ollama.fake_ollama import FakeOllama


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load no other external plugin: these tests are about this one (built-ins still load)."""
    monkeypatch.setenv("HANZO_PLUGINS", "ollama")


@pytest.fixture
def ollama_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    with FakeOllama(tmp_path / "ollama-server" / "blobs") as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


@dataclass
class CdnRegistry:
    """A real registry (``.registry``) whose blobs are served by ``.cdn`` (the file server)."""

    registry: Registry
    cdn: FileServer

    @property
    def host(self) -> str:
        return self.registry.host

    def cdn_path(self, digest: str) -> str:
        """Where the registry redirects a blob GET to (its storage path)."""
        hexdigest = digest.split(":", 1)[1]
        return f"/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"

    def publish(self, digest: str, **faults: Any) -> ServedFile:
        """Let the file server serve this blob (with ``Faults``), from the registry's storage."""
        path = self.cdn_path(digest)
        return self.cdn.add_file(path, self.registry.root / path.lstrip("/"), **faults)

    def push_model(self, repo: str, tag: str, layers: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Push an Ollama model to the registry and publish all its blobs on the CDN."""
        manifest = self.registry.push_ollama_model(repo, tag, layers)
        for blob in (manifest["config"], *manifest["layers"]):
            self.publish(blob["digest"])
        return manifest


def start_cdn_registry(workdir: Path, cdn_url: str) -> Registry:
    """``docker-registry serve`` with the storage ``redirect`` middleware pointing at ``cdn_url``."""
    binary = find_registry_binary()
    if binary is None:
        require_or_skip("docker-registry not installed (apt-get install docker-registry)")
    return start_registry(workdir, binary, redirect_to=cdn_url)


@pytest.fixture
def cdn_registry(tmp_path_factory: pytest.TempPathFactory, fileserver: FileServer) -> Iterator[CdnRegistry]:
    reg = start_cdn_registry(tmp_path_factory.mktemp("cdn-registry"), fileserver.url("/"))
    try:
        yield CdnRegistry(reg, fileserver)
    finally:
        reg.stop()
