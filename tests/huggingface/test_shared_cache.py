"""hanzo and real huggingface_hub releases (0.36, the last 0.x, and a current 1.x, each in its own venv)
sharing one cache: interrupted pulls of either, in every order, end with a verified blob, and
huggingface_hub's own scan reports nothing incomplete or corrupted once hanzo has finished.

Interruptions need a server slow enough to kill a transfer halfway (and Range, for hanzo's resume):
the loopback Hub of ``hubserver.py`` (CDN redirects, X-Linked-* headers, as huggingface.co); olah,
which cannot throttle, serves the orderings without interruption.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.hfhub import DOWNLOAD, HUB_VERSIONS, SCAN, hub_env, hub_python, run_hub
from tests.fixtures.olah import Olah, unique_repo_id
from tests.helpers import hanzo_json, run_hanzo
from tests.huggingface.hubserver import FakeHub

MiB = 1 << 20
SIZE = 24 * MiB


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob_names(cache: Path, repo_folder: str) -> list[str]:
    return sorted(p.name for p in (cache / repo_folder / "blobs").glob("*"))


def wait_until(done: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert proc.poll() is None, f"{what} ended before it could be killed"
        assert time.monotonic() < deadline, f"{what} made no progress"
        time.sleep(0.02)


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def hanzo_state(cache: Path, repo_folder: str, sha: str) -> int:
    """Bytes hanzo's partial claims (its JSON state beside the partial, under .locks/)."""
    state = cache / ".locks" / "hanzo-partial" / repo_folder / f"{sha}.json"
    try:
        return sum(done for _, _, done in json.loads(state.read_text())["parts"])
    except (OSError, ValueError, KeyError):
        return 0


def incomplete_bytes(cache: Path, repo_folder: str) -> int:
    return sum(p.stat().st_size for p in (cache / repo_folder / "blobs").glob("*.incomplete"))


def assert_clean_for_every_hub(cache: Path, endpoint: str, expected: dict[str, int]) -> None:
    """Each huggingface_hub version's own scan: exactly these files, no warning, nothing incomplete."""
    for version in HUB_VERSIONS:
        scan = run_hub(version, SCAN, str(cache), endpoint=endpoint)
        # huggingface_hub 1.x writes CACHEDIR.TAG itself, which 0.x scans as a broken repo: theirs,
        # not hanzo's (hanzo never writes it, see test_hanzo_killed_then_huggingface_hub_then_hanzo)
        scan["warnings"] = [w for w in scan["warnings"] if not w.endswith("/CACHEDIR.TAG")]
        assert scan == {"files": expected, "warnings": [], "incomplete": []}, version


@pytest.fixture
def big_repo(hub: FakeHub) -> tuple[str, bytes, str, str]:
    """A GGUF repo whose one LFS file is slow enough to interrupt: (repo id, data, sha256, commit)."""
    data = os.urandom(SIZE)
    repo_id = f"org/big{os.getpid()}-GGUF"
    commit = hub.add_repo(repo_id, {"big-Q8_0.gguf": data})
    hub.cdn(data).faults.throttle = 6 * MiB
    return repo_id, data, hashlib.sha256(data).hexdigest(), commit


@pytest.mark.parametrize("version", HUB_VERSIONS)
def test_hanzo_killed_then_huggingface_hub_then_hanzo(
    version: str, hub: FakeHub, hf_cache: Path, big_repo: tuple[str, bytes, str, str]
) -> None:
    repo_id, data, sha, commit = big_repo
    hub_python(version)  # created before the clock starts
    folder = "models--" + repo_id.replace("/", "--")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", f"hf:{repo_id}:Q8_0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: hanzo_state(hf_cache, folder, sha) > SIZE // 4, proc, "the hanzo pull")
    finally:
        kill_9(proc)
    # what hanzo left is outside every name huggingface_hub resumes, counts or prunes
    assert blob_names(hf_cache, folder) == []
    assert (hf_cache / folder / "refs" / "main").read_text() == commit  # the ref first, as HF writes it
    # and no CACHEDIR.TAG, which 0.x would scan as a corrupted repo
    assert sorted(p.name for p in hf_cache.iterdir()) == [".locks", folder]

    hub.cdn(data).faults.throttle = None
    pointer = Path(run_hub(version, DOWNLOAD, repo_id, "big-Q8_0.gguf", str(hf_cache), endpoint=hub.endpoint))
    assert sha256_of(pointer) == sha  # not a preallocated partial "resumed" into zeros

    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    assert pulled["digest"] == f"sha256:{sha}" and sha256_of(Path(pulled["path"])) == sha
    assert blob_names(hf_cache, folder) == [sha]
    assert not (hf_cache / ".locks" / "hanzo-partial" / folder).exists()  # hanzo's leftovers went
    assert_clean_for_every_hub(hf_cache, hub.endpoint, {f"{repo_id}/{commit}/big-Q8_0.gguf": SIZE})


@pytest.mark.parametrize("version", HUB_VERSIONS)
def test_huggingface_hub_killed_then_hanzo(
    version: str, hub: FakeHub, hf_cache: Path, big_repo: tuple[str, bytes, str, str]
) -> None:
    repo_id, data, sha, commit = big_repo
    python = hub_python(version)
    folder = "models--" + repo_id.replace("/", "--")
    proc = subprocess.Popen(
        [str(python), "-c", DOWNLOAD, repo_id, "big-Q8_0.gguf", str(hf_cache)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=hub_env(hub.endpoint),
    )
    try:
        wait_until(lambda: incomplete_bytes(hf_cache, folder) > SIZE // 4, proc, "huggingface_hub")
    finally:
        kill_9(proc)
    assert [n for n in blob_names(hf_cache, folder) if n.endswith(".incomplete")]

    hub.cdn(data).faults.throttle = None
    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    assert pulled["digest"] == f"sha256:{sha}" and sha256_of(Path(pulled["path"])) == sha
    # huggingface_hub's interrupted download of that blob is gone with the blob complete
    assert blob_names(hf_cache, folder) == [sha]
    assert_clean_for_every_hub(hf_cache, hub.endpoint, {f"{repo_id}/{commit}/big-Q8_0.gguf": SIZE})

    pointer = Path(run_hub(version, DOWNLOAD, repo_id, "big-Q8_0.gguf", str(hf_cache), endpoint=hub.endpoint))
    assert sha256_of(pointer) == sha and pointer == Path(pulled["path"])


def test_old_hanzo_partial_is_moved_out_of_huggingface_hubs_names(
    hub: FakeHub, hf_cache: Path, big_repo: tuple[str, bytes, str, str]
) -> None:
    """An older hanzo kept a preallocated ``blobs/<etag>.incomplete`` (+ ``.incomplete.json``): the
    exact file huggingface_hub 0.36 "resumes" into zeros. hanzo moves it away and resumes from it."""
    repo_id, data, sha, _ = big_repo
    hub.cdn(data).faults.throttle = None
    blobs = hf_cache / f"models--{repo_id.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True)
    partial = blobs / f"{sha}.incomplete"
    with open(partial, "wb") as f:
        f.truncate(SIZE)  # sparse, full length, as the old downloader preallocated it
        f.write(data[: 4 * MiB])
    state = {"version": 1, "size": SIZE, "sha256": sha, "parts": [[0, SIZE, 4 * MiB]]}
    (blobs / f"{sha}.incomplete.json").write_text(json.dumps(state))

    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")

    assert sha256_of(Path(pulled["path"])) == sha
    assert sorted(p.name for p in blobs.iterdir()) == [sha]
    # resumed from the adopted bytes: no request asks for the start of the file again
    ranges = [r.headers.get("range", "") for r in hub.server.requests_for(hub.cdn(data).path)]
    assert ranges and all(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges


@pytest.mark.parametrize("version", HUB_VERSIONS)
def test_a_blob_with_the_right_name_and_wrong_bytes_is_fetched_again(
    version: str, olah: Olah, hf_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the old bug left: huggingface_hub "completed" a blob of zeros under the right name and
    size. hanzo verifies what it finds, sets the blob aside with one warning, and fetches it again."""
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    repo_id = unique_repo_id("shared")
    data = os.urandom(3 * MiB)
    commit = olah.make_repo(repo_id, {"m-Q8_0.gguf": data, "README.md": b"hi\n"})
    pointer = Path(run_hub(version, DOWNLOAD, repo_id, "m-Q8_0.gguf", str(hf_cache), endpoint=olah.endpoint))
    blob = pointer.resolve()
    blob.write_bytes(bytes(len(data)))  # right name, right size, wrong bytes

    proc = run_hanzo("model:pull", f"hf:{repo_id}:Q8_0")

    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "does not match" in warnings[0] and "fetching it again" in warnings[0]
    assert blob.read_bytes() == data
    aside = list((hf_cache / ".locks" / "hanzo-corrupt").rglob("*"))
    assert [p.read_bytes() == bytes(len(data)) for p in aside if p.is_file()] == [True]
    assert_clean_for_every_hub(hf_cache, olah.endpoint, {f"{repo_id}/{commit}/m-Q8_0.gguf": len(data)})

    # verified once: an unchanged blob is not hashed (nor set aside) again
    again = run_hanzo("model:pull", f"hf:{repo_id}:Q8_0")
    assert again.returncode == 0 and "Warning" not in again.stderr and "already in the cache" in again.stderr


@pytest.mark.parametrize("version", HUB_VERSIONS)
def test_orderings_with_olah(
    version: str, olah: Olah, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """huggingface_hub first then hanzo, and hanzo first then huggingface_hub: one blob, linked once."""
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    first, second = unique_repo_id("order"), unique_repo_id("order")
    data = os.urandom(MiB)
    commits = {r: olah.make_repo(r, {"m-Q8_0.gguf": data}) for r in (first, second)}

    run_hub(version, DOWNLOAD, first, "m-Q8_0.gguf", str(hf_cache), endpoint=olah.endpoint)
    hanzo_json("model:pull", f"hf:{first}:Q8_0", "--json")
    hanzo_json("model:pull", f"hf:{second}:Q8_0", "--json")
    pointer = Path(run_hub(version, DOWNLOAD, second, "m-Q8_0.gguf", str(hf_cache), endpoint=olah.endpoint))

    assert pointer.read_bytes() == data
    expected = {f"{r}/{c}/m-Q8_0.gguf": len(data) for r, c in commits.items()}
    assert_clean_for_every_hub(hf_cache, olah.endpoint, expected)


def test_hf_cache_prune_after_an_interrupted_pull_leaves_the_resume_intact(
    hub: FakeHub, hf_cache: Path, big_repo: tuple[str, bytes, str, str]
) -> None:
    """``hf cache prune`` (the installed huggingface_hub's CLI) does not see hanzo's partial: the next
    pull resumes it, and leaves nothing of hanzo's behind."""
    hf = Path(sys.executable).with_name("hf")
    if not hf.is_file():
        pytest.skip("the installed huggingface_hub has no hf CLI")
    repo_id, data, sha, _ = big_repo
    folder = "models--" + repo_id.replace("/", "--")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", f"hf:{repo_id}:Q8_0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: hanzo_state(hf_cache, folder, sha) > SIZE // 4, proc, "the hanzo pull")
    finally:
        kill_9(proc)
    saved = hanzo_state(hf_cache, folder, sha)

    pruned = subprocess.run([str(hf), "cache", "prune", "--yes"], capture_output=True, text=True)
    assert pruned.returncode == 0, pruned.stderr
    assert hanzo_state(hf_cache, folder, sha) == saved

    hub.cdn(data).faults.throttle = None
    before = len(hub.server.requests_for(hub.cdn(data).path))
    pulled = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    assert sha256_of(Path(pulled["path"])) == sha
    # resumed, not restarted: the next pull never asks for the start of the file again
    ranges = [r.headers.get("range", "") for r in hub.server.requests_for(hub.cdn(data).path)[before:]]
    assert ranges and not any(r in ("", "bytes=0-") or r.startswith("bytes=0-") for r in ranges), ranges
    assert sorted(p.name for p in (hf_cache / ".locks").rglob("*") if "hanzo" in p.as_posix()) == []


@pytest.mark.parametrize("version", HUB_VERSIONS)
def test_hanzo_and_huggingface_hub_never_write_one_blob_at_once(
    version: str, hub: FakeHub, hf_cache: Path, big_repo: tuple[str, bytes, str, str]
) -> None:
    """huggingface_hub started while hanzo writes a blob waits on the blob's lock (which hanzo holds),
    then finds the blob complete: the file is downloaded once, by hanzo."""
    repo_id, data, sha, _ = big_repo
    python = hub_python(version)
    folder = "models--" + repo_id.replace("/", "--")
    pull = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", f"hf:{repo_id}:Q8_0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: hanzo_state(hf_cache, folder, sha) > 0, pull, "the hanzo pull")
        assert pull.poll() is None  # still writing the blob (about 4 s at the throttled rate)
        other = subprocess.run(
            [str(python), "-c", DOWNLOAD, repo_id, "big-Q8_0.gguf", str(hf_cache)],
            capture_output=True,
            text=True,
            env=hub_env(hub.endpoint),
            timeout=120,
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert pull.wait(timeout=120) == 0
    finally:
        if pull.poll() is None:
            kill_9(pull)
    assert sha256_of(Path(other.stdout.strip())) == sha
    # huggingface_hub downloaded nothing itself: every GET of the bytes came from hanzo
    agents = {r.headers.get("user-agent", "") for r in hub.server.requests_for(hub.cdn(data).path)}
    assert agents and all(a.startswith("hanzo-cli/") for a in agents), agents
    assert blob_names(hf_cache, folder) == [sha]
