"""``HF_ENDPOINT`` pointed at olah in proxy mode: a real caching mirror of the Hub, in front of our
loopback Hub (hubserver.py), as a fleet would run it.

olah 0.5.4 fetches what the first node asks for from its upstream and keeps it; the next node gets the
bytes from olah's cache, and eight nodes at once cost the upstream one copy. While the upstream is down,
olah in proxy mode still asks it about each file and answers 504 (a node that already has the model is
not affected); restarted offline over the same cache, it serves what it holds. Every pulled byte is
checked against the upstream's copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fileserver import FileServer
from tests.fixtures.models import fake_gguf_with_file_type, test_cache_dir
from tests.fixtures.olah import OLAH_VERSION, Olah, olah_cli, start_olah_proxy
from tests.fixtures.registry import require_or_skip
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.conftest import scanned
from tests.huggingface.hubserver import FakeHub

pytest_plugins = ["tests.fixtures.safetensors_models"]

GGUF_REPO = "org/Tiny-GGUF"
SNAPSHOT_REPO = "org/tiny-qwen3-embedding"


@dataclass
class ProxiedHub:
    hub: FakeHub
    olah: Olah
    workdir: Path
    gguf: dict[str, bytes]  # file name -> bytes, in GGUF_REPO (both LFS, as on the Hub)
    snapshot: dict[str, bytes]  # path -> bytes, in SNAPSHOT_REPO (model.safetensors LFS, the rest git)

    def restart_olah(self, *, offline: bool) -> None:
        """Stop olah and start it again on the same port and cache."""
        port = int(self.olah.endpoint.rsplit(":", 1)[1])
        self.olah.stop()
        netloc = f"127.0.0.1:{port}"  # never reached while offline
        self.olah = start_olah_proxy(self.workdir, netloc, netloc, offline=offline, port=port)

    def upstream_file_gets(self) -> list[str]:
        """Paths of the upstream's GETs of file bytes (resolve and CDN), since the last reset."""
        return [
            r.path
            for r in self.hub.server.requests
            if r.method == "GET" and ("/resolve/" in r.path or r.path.startswith("/cdn/"))
        ]


@pytest.fixture
def proxied(
    tmp_path_factory: pytest.TempPathFactory, tiny_qwen3_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProxiedHub]:
    """Our Hub holding a GGUF repo and a sentence-transformers repo, olah proxying it at HF_ENDPOINT."""
    try:
        olah_cli()
    except (OSError, RuntimeError) as exc:
        require_or_skip(f"cannot set up olah=={OLAH_VERSION} in {test_cache_dir() / 'olah-venv'}: {exc}")
    work = tmp_path_factory.mktemp("olah-proxy")
    gguf = {
        f"Tiny-{quant}.gguf": fake_gguf_with_file_type(
            work / f"{quant}.gguf", file_type=quant, n_embd=n
        ).read_bytes()
        for quant, n in (("Q8_0", 64), ("Q4_K_M", 32))
    }
    snapshot = {
        p.relative_to(tiny_qwen3_folder).as_posix(): p.read_bytes()
        for p in sorted(tiny_qwen3_folder.rglob("*"))
        if p.is_file()
    }
    with FileServer() as server:
        hub = FakeHub(server)
        hub.add_repo(GGUF_REPO, dict(gguf))
        hub.add_repo(SNAPSHOT_REPO, dict(snapshot), lfs=lambda p: p.endswith(".safetensors"))
        mirror = start_olah_proxy(work, f"127.0.0.1:{server.port}", f"localhost:{server.port}")
        proxied = ProxiedHub(hub, mirror, work, gguf, snapshot)
        monkeypatch.setenv("HF_ENDPOINT", mirror.endpoint)
        try:
            yield proxied
        finally:
            proxied.olah.stop()


def node(tmp_path: Path, name: str) -> dict[str, str]:
    """The environment of another machine of the fleet: its own hanzo home and Hugging Face cache."""
    return {"HANZO_HOME": str(tmp_path / name / "hanzo"), "HF_HOME": str(tmp_path / name / "hf")}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_snapshot(pulled: dict[str, Any], expected: dict[str, bytes]) -> None:
    """``model:pull --json`` of a whole repo: every file, each with the upstream's bytes."""
    root = Path(pulled["path"])
    assert {Path(f["path"]).relative_to(root).as_posix() for f in pulled["files"]} == set(expected)
    for path, data in expected.items():
        assert sha256((root / path).read_bytes()) == sha256(data), path


def test_pulls_through_the_proxy_and_the_second_node_is_served_from_its_cache(
    proxied: ProxiedHub, tmp_path: Path
) -> None:
    q8 = proxied.gguf["Tiny-Q8_0.gguf"]

    first = hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json")
    snap = hanzo_json("model:pull", f"hf:{SNAPSHOT_REPO}", "--json")

    assert first["name"] == f"{GGUF_REPO}:Q8_0" and first["digest"] == f"sha256:{sha256(q8)}"
    assert sha256(Path(first["path"]).read_bytes()) == sha256(q8)
    assert_snapshot(snap, proxied.snapshot)
    fetched = proxied.upstream_file_gets()
    assert f"/cdn/{sha256(q8)}" in fetched  # olah followed the Hub's LFS redirect itself
    assert f"/cdn/{sha256(proxied.snapshot['model.safetensors'])}" in fetched
    assert any("/resolve/" in p and p.endswith("/tokenizer.json") for p in fetched)  # kept in git
    total = len(q8) + sum(len(d) for d in proxied.snapshot.values())
    assert total <= proxied.hub.server.bytes_sent() <= 1.05 * total

    proxied.hub.server.reset_counters()
    second = hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json", env=node(tmp_path, "node2"))
    snap2 = hanzo_json("model:pull", f"hf:{SNAPSHOT_REPO}", "--json", env=node(tmp_path, "node2"))

    assert second["digest"] == first["digest"] and second["path"] != first["path"]
    assert sha256(Path(second["path"]).read_bytes()) == sha256(q8)
    assert_snapshot(snap2, proxied.snapshot)
    assert proxied.upstream_file_gets() == [] and proxied.hub.server.bytes_sent() == 0


def test_eight_nodes_pulling_at_once_cost_the_upstream_one_copy(proxied: ProxiedHub, tmp_path: Path) -> None:
    """olah fetches a block its clients are all waiting for once (measured here: 1.00x for 32 MiB)."""
    data = os.urandom(32 << 20)
    proxied.hub.add_repo("org/big", {"model.safetensors": data, "config.json": b"{}"})
    nodes = [node(tmp_path, f"node{i}") for i in range(8)]

    pulls = [
        subprocess.Popen(
            [sys.executable, "-m", "hanzo_cli", "model:pull", "hf:org/big", "--json"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in nodes
    ]
    outputs = [p.communicate(timeout=300) for p in pulls]

    assert [p.returncode for p in pulls] == [0] * 8, [err for _, err in outputs]
    for out, _ in outputs:
        assert_snapshot(json.loads(out), {"model.safetensors": data, "config.json": b"{}"})
    assert len(data) <= proxied.hub.cdn(data).bytes_sent < 1.5 * len(data)  # not once per node


def test_upstream_down_a_proxying_olah_answers_504_for_new_nodes(proxied: ProxiedHub, tmp_path: Path) -> None:
    """olah 0.5.4 in proxy mode revalidates each file with its upstream, even when it holds the bytes."""
    pulled = hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json")
    proxied.hub.server.stop()

    fresh = node(tmp_path, "fresh")
    proc = run_hanzo("model:pull", f"hf:{GGUF_REPO}:Q8_0", env=fresh)

    assert_one_line_error(
        proc, "HTTP 504 (Gateway Timeout)", "mirror at HF_ENDPOINT could not reach its upstream"
    )
    assert scanned(Path(fresh["HF_HOME"]) / "hub") == {}  # nothing half-written
    # the node that has the model keeps it: olah answers the metadata from its cache
    again = hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json")
    assert again["path"] == pulled["path"] and again["digest"] == pulled["digest"]


def test_upstream_down_olah_restarted_offline_serves_what_it_cached(
    proxied: ProxiedHub, tmp_path: Path
) -> None:
    hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json")
    hanzo_json("model:pull", f"hf:{SNAPSHOT_REPO}", "--json")
    proxied.hub.server.stop()
    proxied.restart_olah(offline=True)

    fresh = node(tmp_path, "fresh")
    gguf = hanzo_json("model:pull", f"hf:{GGUF_REPO}:Q8_0", "--json", env=fresh)
    # olah sends its own ETag for files kept in git here (not their object id): hanzo checks the bytes
    snap = hanzo_json("model:pull", f"hf:{SNAPSHOT_REPO}", "--json", env=fresh)

    assert sha256(Path(gguf["path"]).read_bytes()) == sha256(proxied.gguf["Tiny-Q8_0.gguf"])
    assert_snapshot(snap, proxied.snapshot)
    cached = scanned(Path(fresh["HF_HOME"]) / "hub")

    other = node(tmp_path, "other")
    assert_one_line_error(
        run_hanzo("model:pull", f"hf:{GGUF_REPO}:Q4_K_M", env=other), "Tiny-Q4_K_M.gguf", "not found"
    )
    assert_one_line_error(
        run_hanzo("model:pull", "hf:org/never-pulled", env=other), "org/never-pulled", "not found"
    )
    assert scanned(Path(other["HF_HOME"]) / "hub") == {}
    assert scanned(Path(fresh["HF_HOME"]) / "hub") == cached


def test_a_file_kept_in_git_is_judged_by_its_bytes_when_the_etag_is_opaque(
    hub: FakeHub, hf_cache: Path
) -> None:
    """What let the offline olah above serve config files: an ETag that is not a git object id says
    nothing about the content; one that is must match, and the bytes' object id always must."""
    from hanzo_cli import models
    from hanzo_cli.errors import HanzoError, IntegrityError
    from hanzo_cli.providers import PullOptions

    commit = hub.add_repo("org/cfg", {"config.json": b'{"hidden_size": 8}'})
    repo = hub.repos["org/cfg"]

    def pull() -> Path:
        info = models.pull("hf:org/cfg", options=PullOptions(extra={"file": "config.json"}))
        assert info.path is not None
        return info.path

    repo.head_headers["config.json"] = {"ETag": '"0123456789abcdef0123456789abcdef-10"'}
    assert pull().read_bytes() == b'{"hidden_size": 8}'
    shutil.rmtree(hf_cache)

    repo.head_headers["config.json"] = {"ETag": '"' + "0" * 40 + '"'}
    with pytest.raises(HanzoError, match="metadata disagree"):
        pull()

    repo.head_headers["config.json"] = {"ETag": '"opaque"'}
    hub.server.file(f"/raw/org/cfg/{commit}/config.json").faults.corrupt_offset = 3
    with pytest.raises(IntegrityError, match=r"git object id mismatch for config\.json"):
        pull()
    assert scanned(hf_cache) == {}
