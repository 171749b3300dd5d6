"""Fixtures of the lifecycle tests (model:outdated, model:update, pins, locks).

``logged_registry``: a real CNCF distribution registry with its access log on, so a test can count
what the registry served (requests and body bytes per path) instead of trusting hanzo's word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.registry import Registry, find_registry_binary, require_or_skip, start_registry

# Apache combined log format, as distribution's access log writes it.
_ACCESS_RE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<bytes>\d+|-)')


@dataclass(frozen=True)
class Served:
    method: str
    path: str
    status: int
    bytes: int


def served(registry: Registry) -> list[Served]:
    """Every request the registry logged so far, in order."""
    rows = []
    for line in registry.log.read_text(errors="replace").splitlines():
        m = _ACCESS_RE.search(line)
        if m:
            size = 0 if m["bytes"] == "-" else int(m["bytes"])
            rows.append(Served(m["method"], m["path"], int(m["status"]), size))
    return rows


def start_logged_registry(workdir: Path) -> Registry:
    """``docker-registry serve`` logging every request with the bytes it sent (see :func:`served`)."""
    binary = find_registry_binary()
    if binary is None:
        require_or_skip("docker-registry not installed (apt-get install docker-registry)")
    return start_registry(workdir, binary, access_log=True)


@pytest.fixture
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_logged_registry(tmp_path_factory.mktemp("logged-registry"))
    try:
        yield reg
    finally:
        reg.stop()
