"""The standard Hugging Face cache, written exactly as huggingface_hub writes it, read and pruned
with huggingface_hub's own cache API (``scan_cache_dir``, ``delete_revisions``, ``delete_files``).

Layout of one repo (``models--org--name``)::

    blobs/<etag>                          the bytes (etag: LFS sha256, or git object id)
    blobs/<etag>.incomplete(.json|.lock)  a resumable partial download (hanzo's downloader)
    blobs/<etag>.unverified               a file kept in git, downloaded, before its object id is checked
    snapshots/<commit>/<path>             relative symlink to ../../blobs/<etag> (deeper for subfolders)
    refs/<revision>                       the commit a branch or tag pointed at when pulled

so ``hf cache ls``, ``hf_hub_download`` and every library that reads the cache see what hanzo pulled.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.api import HanzoError
from hanzo_huggingface.refs import (
    DEFAULT_REVISION,
    check_object_id,
    check_repo_id,
    check_repo_path,
    check_revision,
    is_commit,
)

if TYPE_CHECKING:
    from huggingface_hub import CachedFileInfo, HFCacheInfo


# The Cache Directory Tagging Standard's signature, as huggingface_hub writes it: backup tools skip the cache.
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n"
)


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """``<cache>/models--org--name``, as huggingface_hub names it."""
    return cache_dir / ("models--" + check_repo_id(repo_id).replace("/", "--"))


class RepoCache:
    """Writes one repo's blobs, snapshot links and refs."""

    def __init__(self, cache_dir: Path, repo_id: str) -> None:
        self.cache_dir = cache_dir
        self.root = repo_folder(cache_dir, repo_id)

    def prepare(self, commit: str) -> None:
        """Create the snapshot folder before any blob, as huggingface_hub does, so that a scan never
        sees a repo without ``snapshots/``; tag the cache folder for backup tools."""
        self.snapshot(commit).mkdir(parents=True, exist_ok=True)
        tag = self.cache_dir / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / check_object_id(etag, "ETag")

    def incomplete(self, etag: str) -> Path:
        return self.root / "blobs" / f"{check_object_id(etag, 'ETag')}.incomplete"

    def snapshot(self, commit: str) -> Path:
        return self.root / "snapshots" / check_object_id(commit, "commit id")

    def pointer(self, commit: str, path: str) -> Path:
        return self.snapshot(commit) / check_repo_path(path)

    def link(self, commit: str, path: str, etag: str) -> None:
        """Point ``snapshots/<commit>/<path>`` at ``blobs/<etag>`` with a relative symlink, atomically."""
        pointer = self.pointer(commit, path)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.blob(etag), pointer.parent)
        tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            os.symlink(target, tmp)
            os.replace(tmp, pointer)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise HanzoError(f"cannot create the cache link {pointer}: {exc}") from None

    def write_ref(self, revision: str, commit: str) -> None:
        """Record which commit ``revision`` resolved to (nothing to record for a commit itself)."""
        if revision == commit:
            return
        ref = self.root / "refs" / check_revision(revision)
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)


@dataclass(frozen=True)
class Snapshot:
    """One cached revision of a model repo and its files (keyed by path in the repo)."""

    repo_id: str
    commit: str
    refs: frozenset[str]
    path: Path
    files: Mapping[str, CachedFileInfo]

    @property
    def label(self) -> str | None:
        """How names refer to this revision: nothing for the one ``main`` points at, else a ref
        (one without '/') or the commit."""
        if DEFAULT_REVISION in self.refs:
            return None
        return next((r for r in sorted(self.refs) if "/" not in r), self.commit)

    def sizes(self) -> dict[str, int]:
        """Path in the repo -> size, what :func:`selection.choose` selects from."""
        return {path: f.size_on_disk for path, f in self.files.items()}


class CacheScan:
    """What huggingface_hub's ``scan_cache_dir`` sees: every model repo revision that has files."""

    def __init__(self, cache_dir: Path) -> None:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound

        self.info: HFCacheInfo | None
        try:
            self.info = scan_cache_dir(cache_dir)
        except CacheNotFound:
            self.info = None
        self.snapshots: list[Snapshot] = []
        for repo in self.info.repos if self.info else ():
            if repo.repo_type != "model" or "/" not in repo.repo_id:
                continue  # datasets, spaces and legacy repo ids without an org are not models we name
            for rev in repo.revisions:
                files = {f.file_path.relative_to(rev.snapshot_path).as_posix(): f for f in rev.files}
                if files:
                    self.snapshots.append(
                        Snapshot(repo.repo_id, rev.commit_hash, rev.refs, rev.snapshot_path, files)
                    )
        self.snapshots.sort(key=lambda s: (s.repo_id.lower(), s.label or ""))

    def find(self, repo_id: str, revision: str | None) -> Snapshot | None:
        """The cached snapshot a repo id (any case) and a revision (ref or commit; default main) name."""
        revision = revision or DEFAULT_REVISION
        repos = [s for s in self.snapshots if s.repo_id.lower() == repo_id.lower()]
        repos.sort(key=lambda s: s.repo_id != repo_id)  # the exact spelling first
        for snap in repos:
            if revision in snap.refs or (is_commit(revision) and snap.commit == revision):
                return snap
        return None

    def delete(self, snapshot: Snapshot, paths: Iterable[str] | None = None) -> None:
        """Delete ``paths`` of a snapshot (blobs only when no other revision links them), or with
        ``paths=None`` the whole revision (its refs too; the repo folder with its last revision)."""
        assert self.info is not None  # a snapshot came from this scan
        if paths is None:
            strategy = self.info.delete_revisions(snapshot.commit)
        else:
            strategy = self.info.delete_files(*(snapshot.files[p] for p in paths))
        strategy.execute()
