"""model:du and model:prune: sharing counted once, only orphans and stale partials reclaimed, and a
prune running in another process while a pull is under way loses nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from hanzo_cli.store import Store
from tests.fixtures.olah import Olah, unique_repo_id
from tests.fixtures.registry import Registry
from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo
from tests.huggingface.conftest import scanned
from tests.lifecycle.test_hf_updates import commit
from tests.lifecycle.test_ollama_updates import PARAMS, TEMPLATE_V1, TEMPLATE_V2, push
from tests.ollama.conftest import CdnRegistry, cdn_registry  # noqa: F401  (fixture)

LONG_AGO = time.time() - 2 * 86400  # older than the 24 h default for partials


@pytest.fixture(autouse=True)
def only_these_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANZO_PLUGINS", "ollama,huggingface")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify(model: dict[str, object]) -> None:
    for f in model["files"]:  # type: ignore[attr-defined]
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["digest"].split(":")[1]


def aged(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def test_du_counts_shared_blobs_once_and_prune_takes_only_what_no_model_needs(
    registry: Registry, tiny_llama_gguf: Path
) -> None:
    push(registry, tiny_llama_gguf, TEMPLATE_V1, repo="ns/a", tag="v1")
    push(registry, tiny_llama_gguf, TEMPLATE_V2, repo="ns/b", tag="v1")  # same GGUF, params, config
    a = hanzo_json("model:pull", "--insecure", f"ollama:{registry.host}/ns/a:v1", "--json")
    b = hanzo_json("model:pull", "--insecure", f"ollama:{registry.host}/ns/b:v1", "--json")
    store = Store.default()
    orphan = aged(store.blob_path(sha(b"nobody's")), b"nobody's")
    young = store.blob_path(sha(b"just written"))
    young.write_bytes(b"just written")  # a pull may be about to name it
    stale = [
        aged(store.partial_path(sha(b"x")), b"part"),
        aged(Path(f"{store.partial_path(sha(b'x'))}.json")),
    ]
    busy = aged(store.partial_path(sha(b"y")), b"busy")

    usage = hanzo_json("model:du", "--json")
    sizes = {f["digest"]: f["size"] for m in (a, b) for f in m["files"]}
    shared = sum(f["size"] for f in a["files"] if f["digest"] in {g["digest"] for g in b["files"]})
    assert usage["total_bytes"] == sum(sizes.values())
    assert usage["providers"] == {"ollama": sum(sizes.values())}
    assert usage["shared_between_models"] == shared == a["size"] - len(TEMPLATE_V1)
    assert {(m["name"], m["bytes"], m["shared_bytes"]) for m in usage["models"]} == {
        (a["name"], a["size"], shared),
        (b["name"], b["size"], shared),
    }
    with FileLock(f"{busy}.lock"):  # a download in progress holds its partial's lock
        usage = hanzo_json("model:du", "--json")
        assert sorted((r["path"], r["reason"]) for r in usage["reclaimable"]) == sorted(
            [(str(orphan), "orphan blob")] + [(str(p), "stale partial") for p in stale]
        )
        assert hanzo_json("model:prune", "--dry-run", "--json") == usage["reclaimable"]
        assert orphan.exists() and all(p.exists() for p in stale)
        removed = hanzo_json("model:prune", "--json")
    assert sorted(r["path"] for r in removed) == sorted(str(p) for p in [orphan, *stale])
    assert not orphan.exists() and not any(p.exists() for p in stale)
    assert young.exists() and busy.exists()
    for model in hanzo_json("model:list", "--json"):
        verify(model)
    assert hanzo_json("model:prune", "--json", "--partials-older-than", "1w") == []
    assert_one_line_error(run_hanzo("model:prune", "--partials-older-than", "soon"), "invalid age", code=2)


def test_prune_in_another_process_during_a_pull_loses_nothing(
    cdn_registry: CdnRegistry,  # noqa: F811
    tiny_llama_gguf: Path,
) -> None:
    """The pull's manifest names a blob that sat in the store as an old orphan: once the pull has
    started, a prune must keep it (and the partial being written) until the manifest is written."""
    manifest = cdn_registry.push_model(
        "ns/slow",
        "v1",
        [("model", tiny_llama_gguf.read_bytes()), ("template", TEMPLATE_V1), ("params", PARAMS)],
    )
    model_digest = manifest["layers"][0]["digest"]
    cdn_registry.publish(model_digest, throttle=max(1, tiny_llama_gguf.stat().st_size // 4))  # ~4 s
    store = Store.default()
    template_blob = aged(store.blob_path(sha(TEMPLATE_V1)), TEMPLATE_V1)
    name = f"ollama:{cdn_registry.host}/ns/slow:v1"
    pull = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", "model:pull", "--insecure", "-q", name, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = store.partial_path(model_digest)
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and pull.poll() is None:
        time.sleep(0.05)
    assert partial.exists(), "the pull never started writing"
    removed = []
    while pull.poll() is None:
        removed += hanzo_json("model:prune", "--partials-older-than", "0s", "--json")
    _, err = pull.communicate()
    assert pull.returncode == 0, err
    assert removed == []
    assert template_blob.exists()
    [model] = hanzo_json("model:list", "--json")
    verify(model)
    assert hanzo_json("model:prune", "--partials-older-than", "0s", "--json") == []


def test_hf_cache_orphans_and_partials(olah: Olah, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    from tests.fixtures.models import fake_gguf_with_file_type

    repo_id = unique_repo_id("hanzo-prune")
    commit(olah, repo_id, fake_gguf_with_file_type(tmp_path / "m.gguf", file_type="Q8_0"), "# r\n")
    [model] = [hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")]
    blobs = Path(model["files"][0]["path"]).resolve().parent
    orphan = aged(blobs / ("ab" * 32), b"unlinked")
    stale = aged(blobs / ("cd" * 32 + ".incomplete"), b"half")
    usage = hanzo_json("model:du", "--json")
    assert usage["providers"] == {"huggingface": model["size"]}
    assert sorted((r["path"], r["reason"]) for r in usage["reclaimable"]) == [
        (str(orphan), "orphan blob"),
        (str(stale), "stale partial"),
    ]
    removed = hanzo_json("model:prune", "--json")
    assert len(removed) == 2 and not orphan.exists() and not stale.exists()
    view = scanned(tmp_path / "hf" / "hub")  # scan_cache_dir: no warnings, the model intact
    assert list(view.values()) == [model["size"]]
    verify(hanzo_json("model:list", "--json")[0])


def test_superseded_hf_revisions_are_reclaimable_and_pins_are_not(
    olah: Olah, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", olah.endpoint)
    from tests.fixtures.models import fake_gguf_with_file_type

    def age(snapshot: Path) -> None:
        for p in [snapshot, *snapshot.rglob("*")]:
            os.utime(p, (LONG_AGO, LONG_AGO), follow_symlinks=False)

    repo_id = unique_repo_id("hanzo-superseded")
    v1_gguf = fake_gguf_with_file_type(tmp_path / "v1.gguf", file_type="Q8_0", n_embd=32)
    v1 = commit(olah, repo_id, v1_gguf, "# r\n")
    hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")
    v2 = commit(
        olah, repo_id, fake_gguf_with_file_type(tmp_path / "v2.gguf", file_type="Q8_0", n_embd=64), "# r\n"
    )
    current = hanzo_json("model:pull", f"hf:{repo_id}:Q8_0", "--json")  # a pull, not an update: v1 stays
    cache = tmp_path / "hf" / "hub"
    assert {c for _, c, _ in scanned(cache)} == {v1, v2}
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / v1
    assert hanzo_json("model:du", "--json")["reclaimable"] == []  # just written: within the grace period
    age(snapshot)

    [item] = hanzo_json("model:du", "--json")["reclaimable"]
    assert (item["path"], item["reason"], item["size"]) == (
        str(snapshot),
        "superseded revision",
        v1_gguf.stat().st_size,
    )
    assert hanzo_json("model:prune", "--dry-run", "--json") == [item]
    assert hanzo_json("model:prune", "--json") == [item]
    assert scanned(cache) == {(repo_id, v2, "Tiny-Q8_0.gguf"): current["size"]}
    verify(hanzo_json("model:list", "--json")[0])

    # Pulled by its commit, the same revision is a pin: never superseded, however old.
    hanzo_json("model:pull", f"hf:{repo_id}@{v1}:Q8_0", "--json")
    age(snapshot)
    assert hanzo_json("model:du", "--json")["reclaimable"] == []
    assert {c for _, c, _ in scanned(cache)} == {v1, v2}
