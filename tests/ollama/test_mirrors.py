"""Registry mirrors (``registry.mirrors`` / ``HANZO_REGISTRY_MIRRORS``) against real registries: an
upstream CNCF distribution registry and a second one as its pull-through cache (``proxy:
remoteurl:``), or as a plain mirror holding a copy, or not running at all."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanzo_cli.store import Store
from tests.fixtures.registry import Registry, find_registry_binary, free_port, require_or_skip, start_registry
from tests.helpers import assert_one_line_error, run_hanzo

MiB = 1024 * 1024


def _start(where: Path, **kwargs: object) -> Registry:
    binary = find_registry_binary()
    if binary is None:
        require_or_skip("docker-registry not installed (apt-get install docker-registry)")
    return start_registry(where, binary, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Registry]:
    reg = _start(tmp_path / "upstream", access_log=True)
    try:
        yield reg
    finally:
        reg.stop()


def push_model(reg: Registry, size: int = 4 * MiB) -> tuple[bytes, str]:
    data = os.urandom(size)
    manifest = reg.push_ollama_model("ns/model", "v1", [("model", data), ("params", b'{"num_ctx": 8}')])
    return data, manifest["layers"][0]["digest"]


def blob_bytes_served(reg: Registry, digest: str) -> int:
    """Bytes of ``digest``'s GETs in the registry's access log (combined format: status, size)."""
    pattern = re.compile(rf'"GET /v2/[^ ]*/blobs/{re.escape(digest)} HTTP/[\d.]+" (\d+) (\d+)')
    return sum(int(m.group(2)) for m in pattern.finditer(reg.log.read_text()))


def mirrors_env(upstream: Registry, *mirror_urls: str) -> dict[str, str]:
    return {"HANZO_REGISTRY_MIRRORS": ",".join(f"{upstream.host}={url}" for url in mirror_urls)}


def test_eight_concurrent_pulls_through_a_pull_through_cache(upstream: Registry, tmp_path: Path) -> None:
    data, digest = push_model(upstream)
    cache = _start(tmp_path / "cache", proxy_remote=upstream.url)
    try:
        env = {**os.environ, **mirrors_env(upstream, cache.url)}
        args = [
            sys.executable,
            "-m",
            "hanzo_cli",
            "model:pull",
            "--insecure",
            f"ollama:{upstream.host}/ns/model:v1",
        ]
        procs = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        cache.stop()
    assert [p.returncode for p in procs] == [0] * 8, [err for _out, err in outs]
    assert all("mirror" not in err for _out, err in outs)  # nobody fell back to the upstream
    assert Store.default().blob_path(digest).read_bytes() == data
    # The cache holds the blob now: it served the pulls.
    assert list(cache.root.rglob(f"blobs/sha256/{digest[7:9]}/{digest[7:]}/data"))
    # The eight pulls share one store, so one process downloads while seven wait for it. The
    # cache (distribution 2.8's proxyblobstore) fetches an uncached blob twice from its upstream:
    # once into its storage, once streamed to that first client.
    assert blob_bytes_served(upstream, digest) <= 2 * len(data)


def test_mirror_down_falls_back_with_one_line(upstream: Registry) -> None:
    data, digest = push_model(upstream)
    dead = f"http://127.0.0.1:{free_port()}"
    proc = run_hanzo(
        "model:pull", "--insecure", f"ollama:{upstream.host}/ns/model:v1", env=mirrors_env(upstream, dead)
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("registry mirror")]
    assert len(lines) == 1 and dead in lines[0] and f"pulling from {upstream.host}" in lines[0], proc.stderr
    assert Store.default().blob_path(digest).read_bytes() == data


def test_mirrors_are_tried_in_order(upstream: Registry, tmp_path: Path) -> None:
    """The first mirror lacks the model (404), the second has a copy: it serves the pull."""
    data, digest = push_model(upstream)
    empty = _start(tmp_path / "empty")
    copy = _start(tmp_path / "copy", access_log=True)
    try:
        copy.push_ollama_model("ns/model", "v1", [("model", data), ("params", b'{"num_ctx": 8}')])
        before = blob_bytes_served(upstream, digest)
        proc = run_hanzo(
            "model:pull",
            "--insecure",
            f"ollama:{upstream.host}/ns/model:v1",
            env=mirrors_env(upstream, empty.url, copy.url),
        )
        served_by_copy = blob_bytes_served(copy, digest)
    finally:
        empty.stop()
        copy.stop()
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("registry mirror")]
    assert len(lines) == 1 and empty.url in lines[0] and f"pulling from {copy.url}" in lines[0], proc.stderr
    assert served_by_copy == len(data) and blob_bytes_served(upstream, digest) == before
    assert Store.default().blob_path(digest).read_bytes() == data


def test_wrong_bytes_on_a_mirror_fall_back_to_the_upstream(upstream: Registry, tmp_path: Path) -> None:
    data, digest = push_model(upstream)
    bad = _start(tmp_path / "bad")
    try:
        bad.push_ollama_model("ns/model", "v1", [("model", data), ("params", b'{"num_ctx": 8}')])
        # Damage the mirror's stored copy (same length): it serves it without checking.
        stored = next(bad.root.rglob(f"blobs/sha256/{digest[7:9]}/{digest[7:]}/data"))
        stored.write_bytes(b"\0" * len(data))
        proc = run_hanzo(
            "model:pull",
            "--insecure",
            f"ollama:{upstream.host}/ns/model:v1",
            env=mirrors_env(upstream, bad.url),
        )
    finally:
        bad.stop()
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("registry mirror")]
    assert len(lines) == 1 and "sha256 mismatch" in lines[0], proc.stderr
    assert hashlib.sha256(Store.default().blob_path(digest).read_bytes()).hexdigest() == digest[7:]


def test_a_bad_mirror_setting_is_one_error_line(upstream: Registry) -> None:
    proc = run_hanzo(
        "model:pull",
        "--insecure",
        f"ollama:{upstream.host}/ns/model:v1",
        env={"HANZO_REGISTRY_MIRRORS": f"{upstream.host}"},
    )
    assert_one_line_error(proc, "registry.mirrors", "upstream-host=")


def test_the_setting_is_registered() -> None:
    proc = run_hanzo("config:set", "registry.mirrors", "registry.ollama.ai=http://127.0.0.1:5000")
    assert proc.returncode == 0, proc.stderr
    proc = run_hanzo("config:get", "registry.mirrors")
    assert "registry.ollama.ai=http://127.0.0.1:5000" in proc.stdout, (proc.stdout, proc.stderr)
