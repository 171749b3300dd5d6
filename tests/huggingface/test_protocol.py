"""The Hub protocol paths olah cannot serve, against a loopback server that answers as huggingface.co
does: CDN redirects, X-Linked-* headers, Range resume after kill -9, verification, Hub errors,
gated repos, revisions, hostile metadata."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hanzo_cli import models
from hanzo_cli.errors import HanzoError, IntegrityError, NotFoundError, RemoteFileNotFoundError
from hanzo_cli.providers import ModelInfo, PullOptions
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.conftest import listed, minilm_files, scanned
from tests.huggingface.hubserver import FakeHub

MiB = 1 << 20


def pull(name: str, **extra: Any) -> ModelInfo:
    return models.pull(f"hf:{name}", options=PullOptions(extra=extra))


def blobs(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("models--*/blobs/*"))


def test_pull_lfs_file_through_cdn_redirect(
    hub: FakeHub, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    commit = hub.add_repo(
        "org/cdn-GGUF", {"m-Q8_0.gguf": data, "m-Q4_K_M.gguf": b"q4" * 100, "README.md": b"hi"}
    )
    monkeypatch.setenv("HF_TOKEN", "hf_secret")

    pulled = pull("org/cdn-GGUF")

    assert (
        pulled.name == "org/cdn-GGUF:Q8_0" and pulled.digest == f"sha256:{sha}" and pulled.size == len(data)
    )
    repo = hf_cache / "models--org--cdn-GGUF"
    pointer = repo / "snapshots" / commit / "m-Q8_0.gguf"
    assert pulled.path == hf_cache.resolve() / pointer.relative_to(hf_cache)
    assert os.readlink(pointer) == f"../../blobs/{sha}"  # relative, exactly as huggingface_hub links
    assert (repo / "blobs" / sha).read_bytes() == data
    assert (repo / "refs" / "main").read_text() == commit
    assert blobs(hf_cache) == [sha]  # only the chosen quant, no partials or state files left
    # the token goes to the Hub, never to the CDN host the LFS file is redirected to
    for request in hub.server.requests:
        auth = request.headers.get("authorization")
        assert auth == (None if request.path.startswith("/cdn/") else "Bearer hf_secret"), request
    assert any(r.path == f"/cdn/{sha}" for r in hub.server.requests)
    assert scanned(hf_cache) == {("org/cdn-GGUF", commit, "m-Q8_0.gguf"): len(data)}

    # pulled again: nothing is downloaded
    hub.server.reset_counters()
    assert pull("org/cdn-GGUF:q8_0").path == pulled.path
    assert hub.server.bytes_sent() < 10_000  # API answers only


def test_huggingface_hub_finds_what_hanzo_pulled(hub: FakeHub, hf_cache: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    commit = hub.add_repo("org/compat", {"model.safetensors": os.urandom(MiB), "config.json": b"{}"})
    pulled = pull("org/compat")
    assert (
        pulled.name == "org/compat"
        and pulled.path == hf_cache.resolve() / f"models--org--compat/snapshots/{commit}"
    )
    found = hf_hub_download("org/compat", "model.safetensors", cache_dir=hf_cache, local_files_only=True)
    assert Path(found).read_bytes() == (pulled.path / "model.safetensors").read_bytes()
    assert Path(snapshot_download("org/compat", cache_dir=hf_cache, local_files_only=True)) == pulled.path


def test_whole_snapshot_of_a_real_model_repo(hub: FakeHub, hf_cache: Path) -> None:
    """all-MiniLM-L6-v2 as on the Hub: weights in LFS behind the CDN, the rest in git, a subfolder.
    What a runtime loads is pulled: not the README, .gitattributes or the training data config."""
    from huggingface_hub import snapshot_download

    served = minilm_files()
    commit = hub.add_repo("sentence-transformers/all-MiniLM-L6-v2", served)
    left_out = {".gitattributes", "README.md", "data_config.json"}
    files = {p: s for p, s in served.items() if p not in left_out}

    pulled = hanzo_json("model:pull", "hf:sentence-transformers/all-MiniLM-L6-v2", "--json")

    snapshot = Path(pulled["path"])
    assert (
        snapshot == hf_cache.resolve() / f"models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{commit}"
    )
    assert pulled["size"] == sum(p.stat().st_size for p in files.values())
    for path, source in files.items():
        assert (snapshot / path).read_bytes() == source.read_bytes(), path
    assert not any((snapshot / p).exists() for p in left_out)
    weights = next(f for f in pulled["files"] if f["path"].endswith("model.safetensors"))
    assert weights["kind"] == "model"
    assert (
        weights["digest"] == "sha256:" + hashlib.sha256(files["model.safetensors"].read_bytes()).hexdigest()
    )
    rows = hanzo_json("model:list", "--json")
    assert [r["name"] for r in rows] == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert listed(rows) == scanned(hf_cache)
    assert (
        Path(
            snapshot_download(
                "sentence-transformers/all-MiniLM-L6-v2", cache_dir=hf_cache, local_files_only=True
            )
        )
        == snapshot
    )


def test_kill_9_mid_pull_then_resume(hub: FakeHub, hf_cache: Path) -> None:
    size = 32 * MiB
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    hub.add_repo("org/big-GGUF", {"big-Q8_0.gguf": data})
    cdn = hub.cdn(data)
    cdn.faults.throttle = 8 * MiB  # bytes per second: slow enough to kill it halfway
    # hanzo's partial and its state live under .locks/, where no huggingface_hub version looks
    state = hf_cache / ".locks" / "hanzo-partial" / "models--org--big-GGUF" / f"{sha}.json"

    proc = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", "hf:org/big-GGUF:Q8_0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _saved_bytes(state) < size // 3:
            assert proc.poll() is None, "the pull ended before it could be killed"
            assert time.monotonic() < deadline, "the pull made no progress"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hf_cache)
    assert not info.incomplete_files and not info.warnings  # nothing for `hf cache prune` to take
    assert not list((hf_cache / "models--org--big-GGUF" / "blobs").glob("*"))
    first_run = cdn.bytes_sent
    assert 0 < first_run < size

    cdn.faults.throttle = None
    result = hanzo_json("model:pull", "hf:org/big-GGUF:Q8_0", "--json")

    assert cdn.bytes_sent <= 1.05 * size, (first_run, cdn.bytes_sent)
    last = hub.server.requests_for(cdn.path)[-1]
    assert last.headers["range"].startswith("bytes=") and not last.headers["range"].startswith("bytes=0-")
    assert result["digest"] == f"sha256:{sha}"
    assert hashlib.sha256(Path(result["path"]).read_bytes()).hexdigest() == sha
    assert blobs(hf_cache) == [sha]


def _saved_bytes(state: Path) -> int:
    try:
        return sum(done for _, _, done in json.loads(state.read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return 0


def test_sha256_mismatch_is_rejected_and_nothing_kept(hub: FakeHub, hf_cache: Path) -> None:
    data = os.urandom(2 * MiB)
    commit = hub.add_repo("org/bad-GGUF", {"m-Q8_0.gguf": data})
    hub.cdn(data).faults.corrupt_offset = 12345

    proc = run_hanzo("model:pull", "hf:org/bad-GGUF:Q8_0")

    assert_one_line_error(proc, "sha256 mismatch", "m-Q8_0.gguf")
    assert [b for b in blobs(hf_cache) if not b.endswith(".lock")] == []
    assert scanned(hf_cache) == {}
    # the ref is written before the download, as huggingface_hub writes it: a later pull (by
    # either tool) finds the same state huggingface_hub leaves after a failed download
    assert (hf_cache / "models--org--bad-GGUF" / "refs" / "main").read_text() == commit


def test_git_object_id_mismatch_is_rejected(hub: FakeHub, hf_cache: Path) -> None:
    commit = hub.add_repo("org/cfg", {"config.json": b'{"hidden_size": 384}', "other.json": b"{}"})
    hub.server.file(f"/raw/org/cfg/{commit}/config.json").faults.corrupt_offset = 3

    with pytest.raises(IntegrityError, match=r"git object id mismatch for config\.json"):
        pull("org/cfg", file="config.json")
    assert [b for b in blobs(hf_cache) if not b.endswith(".lock")] == []

    hub.server.file(f"/raw/org/cfg/{commit}/config.json").faults.corrupt_offset = None
    pulled = pull("org/cfg", file="config.json")
    assert pulled.name == "org/cfg" and pulled.path is not None  # the only file cached: the snapshot
    assert pulled.path.read_bytes() == b'{"hidden_size": 384}'


@pytest.mark.parametrize(
    "path", ["../../evil.gguf", "/tmp/evil.gguf", "sub\\..\\..\\evil.gguf", "a/./../evil.gguf"]
)
def test_traversal_in_a_file_name_from_the_server_is_refused(
    hub: FakeHub, hf_cache: Path, isolated_env: Path, path: str
) -> None:
    hub.add_repo("org/evil-GGUF", {path: os.urandom(1000), "ok-Q8_0.gguf": os.urandom(1000)})

    proc = run_hanzo("model:pull", "hf:org/evil-GGUF:Q8_0")

    assert_one_line_error(proc, "unsafe file name")
    assert not hf_cache.exists()
    assert not list(isolated_env.rglob("evil.gguf"))
    assert not any(r.path.startswith("/cdn/") for r in hub.server.requests)


def test_hostile_object_ids_are_refused(hub: FakeHub, hf_cache: Path) -> None:
    data = os.urandom(1000)
    hub.add_repo("org/ids-GGUF", {"m-Q8_0.gguf": data, "notes.txt": b"x"})
    repo = hub.repos["org/ids-GGUF"]

    repo.head_headers["m-Q8_0.gguf"] = {"X-Linked-Etag": '"../../../../escape"'}
    with pytest.raises(HanzoError, match="metadata disagree"):
        pull("org/ids-GGUF:Q8_0")
    repo.head_headers.clear()

    repo.tree_overrides["m-Q8_0.gguf"] = {"lfs": {"oid": "../../escape", "size": 1000, "pointerSize": 130}}
    with pytest.raises(HanzoError, match=r"invalid sha256 for m-Q8_0\.gguf"):
        pull("org/ids-GGUF:Q8_0")
    repo.tree_overrides["notes.txt"] = {"oid": "../escape"}
    with pytest.raises(HanzoError, match=r"invalid object id for notes\.txt"):
        pull("org/ids-GGUF", file="notes.txt")
    assert not any(r.path.startswith("/cdn/") for r in hub.server.requests)
    assert blobs(hf_cache) == []


def test_hub_errors_each_get_their_own_message(hub: FakeHub) -> None:
    commit = hub.add_repo("org/errs-GGUF", {"m-Q8_0.gguf": b"x" * 100, "m-F16.gguf": b"y" * 200})

    with pytest.raises(NotFoundError, match=r"repository org/nope not found on http://127\.0\.0\.1:\d+"):
        pull("org/nope")
    with pytest.raises(NotFoundError, match="revision 'v9' not found in org/errs-GGUF"):
        pull("org/errs-GGUF", revision="v9")
    with pytest.raises(
        NotFoundError, match=r"file 'm.gguf' not found in org/errs-GGUF \(GGUF files: m-F16.gguf, m-Q8_0"
    ):
        pull("org/errs-GGUF", file="m.gguf")
    with pytest.raises(NotFoundError, match=r"org/errs-GGUF has no Q4_K_M GGUF \(available: F16, Q8_0\)"):
        pull("org/errs-GGUF:Q4_K_M")

    # listed, but the file itself answers 404 EntryNotFound (deleted in between, a broken mirror)
    def gone(handler: Any) -> None:
        hub.error(handler, 404, "EntryNotFound", "Entry not found", commit)

    hub.server.add_route(f"/org/errs-GGUF/resolve/{commit}/m-F16.gguf", gone)
    with pytest.raises(RemoteFileNotFoundError, match=r"file 'm-F16\.gguf' not found in org/errs-GGUF"):
        pull("org/errs-GGUF:F16")

    # a token without read access to the repo
    hub.server.add_route(f"/org/errs-GGUF/resolve/{commit}/m-Q8_0.gguf", lambda h: h.send_status(403))
    with pytest.raises(HanzoError, match=r"access to org/errs-GGUF denied \(HTTP 403\); set HF_TOKEN"):
        pull("org/errs-GGUF:Q8_0")


def test_missing_quant_from_the_cli_lists_the_available_ones(hub: FakeHub) -> None:
    hub.add_repo("org/cli-GGUF", {"m-Q8_0.gguf": b"x" * 100, "m-Q4_K_M.gguf": b"y" * 50})
    proc = run_hanzo("model:pull", "hf:org/cli-GGUF:Q2_K")
    assert_one_line_error(proc, "org/cli-GGUF has no Q2_K GGUF (available: Q4_K_M, Q8_0)")

    proc = run_hanzo("model:pull", "hf:org/cli-GGUF")
    assert proc.returncode == 0, proc.stderr
    assert "using Q8_0 by default (available: Q4_K_M, Q8_0" in proc.stderr


def test_gated_repo(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(1000)
    hub.add_repo("org/gated-GGUF", {"m-Q8_0.gguf": data}, gated_token="hf_granted")

    proc = run_hanzo("model:pull", "hf:org/gated-GGUF")
    assert_one_line_error(proc, "org/gated-GGUF is gated", "HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN", "hf_someone_else")
    with pytest.raises(HanzoError, match="is gated"):
        pull("org/gated-GGUF")
    assert not any(r.path.startswith("/cdn/") for r in hub.server.requests)

    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    assert pull("org/gated-GGUF").size == len(data)


def test_unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HanzoError, match=r"cannot reach the Hub at http://127\.0\.0\.1:9"):
        pull("org/anything")


def test_revisions_share_blobs_and_are_named_apart(hub: FakeHub, hf_cache: Path) -> None:
    q8, old_q4, new_q4 = os.urandom(5000), os.urandom(3000), os.urandom(3000)
    v1 = hub.add_repo("org/rev-GGUF", {"m-Q8_0.gguf": q8, "m-Q4_K_M.gguf": old_q4}, revision="v1")
    main = hub.add_repo("org/rev-GGUF", {"m-Q8_0.gguf": q8, "m-Q4_K_M.gguf": new_q4}, revision="main")

    assert pull("org/rev-GGUF:Q8_0", revision="v1").name == "org/rev-GGUF@v1:Q8_0"
    assert (hf_cache / "models--org--rev-GGUF" / "refs" / "v1").read_text() == v1
    assert pull("org/rev-GGUF@v1:Q4_K_M").details["revision"] == v1
    assert pull("org/rev-GGUF:Q8_0").name == "org/rev-GGUF:Q8_0"
    assert hub.cdn(q8).bytes_sent == len(q8)  # the blob both commits share is fetched once

    rows = hanzo_json("model:list", "--provider", "huggingface", "--json")
    assert sorted(r["name"] for r in rows) == [
        "org/rev-GGUF:Q8_0",
        "org/rev-GGUF@v1:Q4_K_M",
        "org/rev-GGUF@v1:Q8_0",
    ]
    assert listed(rows) == scanned(hf_cache)
    provider = models.candidates("hf:x/y")[0][0]
    found = provider.get(f"org/rev-GGUF@{v1}:Q8_0")
    assert found is not None and found.name == "org/rev-GGUF@v1:Q8_0"

    # deleting v1's Q4_K_M removes that file only; deleting v1's last model removes the revision and
    # its ref but keeps the blob main still links
    provider.delete("org/rev-GGUF@v1:Q4_K_M")
    assert set(scanned(hf_cache)) == {
        ("org/rev-GGUF", v1, "m-Q8_0.gguf"),
        ("org/rev-GGUF", main, "m-Q8_0.gguf"),
    }
    provider.delete("org/rev-GGUF@v1:Q8_0")
    assert set(scanned(hf_cache)) == {("org/rev-GGUF", main, "m-Q8_0.gguf")}
    assert not (hf_cache / "models--org--rev-GGUF" / "refs" / "v1").exists()
    assert provider.get("org/rev-GGUF:Q8_0") is not None
    assert (hf_cache / "models--org--rev-GGUF" / "snapshots" / main / "m-Q8_0.gguf").read_bytes() == q8


def test_offline_mode_uses_the_cache_only(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("org/off-GGUF", {"m-Q8_0.gguf": os.urandom(2000), "m-F16.gguf": os.urandom(4000)})
    pulled = pull("org/off-GGUF:Q8_0")
    hub.server.reset_counters()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    assert pull("org/off-GGUF:Q8_0").path == pulled.path
    assert pull("org/off-GGUF").path == pulled.path  # the default among what is cached
    with pytest.raises(HanzoError, match="HF_HUB_OFFLINE is set"):
        pull("org/off-GGUF:F16")
    with pytest.raises(HanzoError, match="cannot pull org/elsewhere: HF_HUB_OFFLINE is set"):
        pull("org/elsewhere")
    assert hub.server.requests == []
