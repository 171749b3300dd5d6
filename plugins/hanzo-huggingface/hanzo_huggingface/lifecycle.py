"""The Hugging Face provider's model lifecycle: what a revision points at on the Hub now, pins
(a name with ``@<commit>``), updates that fetch only new blobs, and pulls at an exact commit.

A cached model names a branch or tag (``org/repo:Q8_0`` is ``main``) or a commit. A commit is a
pin: it can never move. A branch is checked with one ``model_info`` request; the file listing is
asked for only when the commit moved, to say what an update would download.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from hanzo_cli.api import (
    HanzoError,
    ModelInfo,
    Reclaimable,
    RemoteFile,
    RemoteVersion,
    lock_is_held,
    remove_unless_locked,
)
from hanzo_huggingface.refs import DEFAULT_REVISION, is_commit, model_name, parse


def is_pinned(model: ModelInfo) -> bool:
    try:
        revision = parse(model.name).revision
    except HanzoError:
        return False
    return revision is not None and is_commit(revision)


def installed_version(model: ModelInfo) -> str | None:
    revision = model.details.get("revision")
    return revision if isinstance(revision, str) else None


def remote_version(model: ModelInfo) -> RemoteVersion:
    from huggingface_hub import HfApi

    from hanzo_cli.api import __version__
    from hanzo_huggingface.cache import RepoCache
    from hanzo_huggingface.hub import LIBRARY_NAME, HubSettings, hub_errors, resolve

    ref = parse(model.name)
    settings = HubSettings.from_env()
    if settings.offline:
        raise HanzoError(f"HF_HUB_OFFLINE is set: cannot look up {ref.repo_id} on {settings.endpoint}")
    revision = ref.revision or DEFAULT_REVISION
    api = HfApi(endpoint=settings.endpoint, library_name=LIBRARY_NAME, library_version=__version__)
    with hub_errors(ref.repo_id, revision, settings.endpoint):
        commit = api.model_info(ref.repo_id, revision=revision).sha or ""
    if commit == installed_version(model):
        files = tuple(RemoteFile(f.path.name, f.size, _hex(f.digest)) for f in model.files)
        return RemoteVersion(commit, files, 0)
    res = resolve(ref.repo_id, revision=revision, quant=ref.quant, file=ref.path, settings=settings)
    repo = RepoCache(settings.cache_dir, res.repo_id)
    fetch = sum(f.size for f in res.files if not repo.blob(f.etag).exists())
    return RemoteVersion(res.commit, tuple(RemoteFile(f.path, f.size, f.sha256) for f in res.files), fetch)


def _hex(digest: str | None) -> str | None:
    return digest.split(":", 1)[1] if digest else None


def superseded_name(model: ModelInfo, old_commit: str) -> str:
    """The name the model's previous revision goes by once its branch has moved on."""
    ref = parse(model.name)
    return model_name(ref.repo_id, old_commit, quant=ref.quant, path=ref.path)


def exact_name(name: str, commit: str) -> str:
    """``name`` at ``commit`` (a lock file's entry)."""
    ref = parse(name)
    return model_name(ref.repo_id, commit, quant=ref.quant, path=ref.path)


# -- disk: model:du / model:prune -------------------------------------------------------------------

#: An unlinked blob younger than this is kept: a pull links its blobs only once all are here.
ORPHAN_GRACE_SECONDS = 3600.0
_ETAG = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _hf_lock(cache_dir: Path, repo_name: str, etag: str) -> Path:
    """huggingface_hub's lock for one blob, which hanzo's pulls hold too while they write it."""
    return cache_dir / ".locks" / repo_name / f"{etag}.lock"


def _locks(cache_dir: Path, repo: Path, etag: str) -> list[Path]:
    """The locks a download of ``etag`` may hold: huggingface_hub's, and the downloader's beside
    hanzo's partial (today's place, and the one before it)."""
    partial = cache_dir / ".locks" / "hanzo-partial" / repo.name / etag
    return [
        _hf_lock(cache_dir, repo.name, etag),
        partial.with_name(f"{etag}.lock"),
        repo / "blobs" / f"{etag}.incomplete.lock",
    ]


def _scan(cache_dir: Path, provider: str, partials_older_than: float) -> list[Reclaimable]:
    items: list[Reclaimable] = []
    now = time.time()
    pins = read_pins(cache_dir)
    for repo in sorted(cache_dir.glob("models--*")):
        blobs = repo / "blobs"
        if not blobs.is_dir():
            continue
        linked = set()
        for link in (repo / "snapshots").rglob("*"):
            if link.is_symlink():
                linked.add(Path(os.readlink(link)).name)
        groups: dict[str, list[Path]] = {}
        partials = cache_dir / ".locks" / "hanzo-partial" / repo.name
        for f in [*blobs.iterdir(), *(partials.iterdir() if partials.is_dir() else ())]:
            etag, dot, _ = f.name.partition(".")
            if (dot or f.parent == partials) and _ETAG.match(etag) and not f.name.endswith(".lock"):
                groups.setdefault(etag, []).append(f)
        busy = any(lock_is_held(lock) for etag in groups for lock in _locks(cache_dir, repo, etag))
        for etag, files in sorted(groups.items()):
            newest = max(f.stat().st_mtime for f in files)
            if now - newest >= partials_older_than and not any(
                lock_is_held(x) for x in _locks(cache_dir, repo, etag)
            ):
                items.extend(
                    Reclaimable(provider, f, f.stat().st_size, "stale partial") for f in sorted(files)
                )
        if busy:
            continue  # a pull is under way in this repo: its finished blobs are not linked yet
        for blob in sorted(blobs.iterdir()):
            if not _ETAG.match(blob.name) or blob.name in linked:
                continue
            st = blob.stat()
            if now - st.st_mtime >= ORPHAN_GRACE_SECONDS:
                items.append(Reclaimable(provider, blob, st.st_size, "orphan blob"))
        items.extend(_superseded(repo, provider, pins, now))
    return items


def _links(snapshot: Path) -> dict[str, Path]:
    """Blob name -> one link to it, of every file of a snapshot."""
    return {Path(os.readlink(p)).name: p for p in snapshot.rglob("*") if p.is_symlink()}


def _superseded(repo: Path, provider: str, pins: set[tuple[str, str]], now: float) -> list[Reclaimable]:
    """Revisions no branch or tag names any more while another one is named (a pull of the branch
    moved on), not pinned (pulled by commit), and untouched for the grace period. Their size is
    what deleting them frees: blobs no other revision links."""
    named = set()
    refs = repo / "refs"
    for ref in refs.rglob("*") if refs.is_dir() else ():
        if ref.is_file():
            named.add(ref.read_text().strip())
    snapshots = {p.name: p for p in (repo / "snapshots").iterdir()} if (repo / "snapshots").is_dir() else {}
    if not named & set(snapshots):
        return []  # nothing newer is named: a lone detached revision is kept
    links = {commit: _links(path) for commit, path in snapshots.items()}
    found = []
    for commit, path in sorted(snapshots.items()):
        if commit in named or (repo.name, commit) in pins:
            continue
        touched = max([path.lstat().st_mtime, *(p.lstat().st_mtime for p in links[commit].values())])
        if now - touched < ORPHAN_GRACE_SECONDS:
            continue  # a pull by commit may be linking it right now
        others = set().union(*(v for c, v in links.items() if c != commit))
        freed = sum((repo / "blobs" / b).stat().st_size for b in links[commit] if b not in others)
        found.append(Reclaimable(provider, path, freed, "superseded revision"))
    return found


PINS_FILE = "hanzo-pins.json"


def _pins_path(cache_dir: Path) -> Path:
    return cache_dir / ".locks" / PINS_FILE


def read_pins(cache_dir: Path) -> set[tuple[str, str]]:
    """(repo folder, commit) of every revision pulled by its commit: never "superseded"."""
    import json

    try:
        data = json.loads(_pins_path(cache_dir).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict):
        return set()
    return {(k, c) for k, v in data.items() if isinstance(v, list) for c in v if isinstance(c, str)}


def record_pin(cache_dir: Path, repo_id: str, commit: str, *, pinned: bool = True) -> bool:
    """Remember (or with ``pinned=False`` forget) that ``repo_id`` was pulled at ``commit`` by its
    id, before its files are linked; return whether it was pinned before."""
    import json

    from filelock import FileLock

    from hanzo_cli.api import atomic_write
    from hanzo_huggingface.cache import repo_folder

    path = _pins_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        pins: dict[str, list[str]] = {}
        for folder, known in sorted(read_pins(cache_dir)):
            pins.setdefault(folder, []).append(known)
        folder = repo_folder(cache_dir, repo_id).name
        was = commit in pins.get(folder, [])
        if was == pinned:
            return was
        if pinned:
            pins.setdefault(folder, []).append(commit)
        else:
            pins[folder].remove(commit)
        atomic_write(path, (json.dumps(pins, indent=2, sort_keys=True) + "\n").encode())
        return was


def reclaimable(provider: str, partials_older_than: float) -> list[Reclaimable]:
    from hanzo_huggingface.hub import HubSettings

    cache_dir = HubSettings.from_env().cache_dir
    return _scan(cache_dir, provider, partials_older_than) if cache_dir.is_dir() else []


def reclaim(provider: str, items: Sequence[Reclaimable], partials_older_than: float) -> list[Reclaimable]:
    """Remove what is still reclaimable when checked again (a partial under its own lock)."""
    from hanzo_huggingface.hub import HubSettings

    cache_dir = HubSettings.from_env().cache_dir
    wanted = {item.path for item in items}
    removed: list[Reclaimable] = []
    for item in reclaimable(provider, partials_older_than):
        if item.path not in wanted:
            continue
        if item.reason == "superseded revision":
            from hanzo_huggingface.cache import CacheScan

            scan = CacheScan(cache_dir)
            if scan.info is not None:  # huggingface_hub's own delete: blobs other revisions use stay
                scan.info.delete_revisions(item.path.name).execute()
        elif item.reason == "stale partial":
            etag = item.path.name.partition(".")[0]
            in_blobs = item.path.parent.name == "blobs"
            repo_name = item.path.parent.parent.name if in_blobs else item.path.parent.name
            if not remove_unless_locked([item.path], _hf_lock(cache_dir, repo_name, etag)):
                continue
        else:
            item.path.unlink(missing_ok=True)
        removed.append(item)
    return removed
