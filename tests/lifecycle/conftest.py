"""Fixtures of the lifecycle tests (model:outdated, model:update, pins, locks).

``logged_registry``: a real CNCF distribution registry with its access log on, so a test can count
what the registry served (requests and body bytes per path) instead of trusting hanzo's word.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.registry import Registry, find_registry_binary, free_port, require_or_skip

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
    binary = find_registry_binary()
    if binary is None:
        require_or_skip("docker-registry not installed (apt-get install docker-registry)")
    assert binary is not None
    root = workdir / "storage"
    root.mkdir(parents=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: hanzo-cli-tests\n"
    )
    log = workdir / "registry.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=fh, stderr=subprocess.STDOUT)
    reg = Registry(url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}", root=root, log=log, proc=proc)
    deadline = time.monotonic() + 15
    while True:
        try:
            if reg.client.get(f"{reg.url}/v2/", timeout=1).status_code == 200:
                return reg
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")
        time.sleep(0.02)


@pytest.fixture
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_logged_registry(tmp_path_factory.mktemp("logged-registry"))
    try:
        yield reg
    finally:
        reg.stop()
