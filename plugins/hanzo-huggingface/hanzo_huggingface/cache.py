"""The standard Hugging Face cache, written exactly as huggingface_hub writes it, read and pruned
with huggingface_hub's own cache API (``scan_cache_dir``, ``delete_revisions``, ``delete_files``).

Layout of one repo (``models--org--name``)::

    blobs/<etag>                          the bytes (etag: LFS sha256, or git object id)
    snapshots/<commit>/<path>             relative symlink to ../../blobs/<etag> (deeper for subfolders)
    refs/<revision>                       the commit a branch or tag pointed at, written before the
                                          download, as huggingface_hub does

so ``hf cache ls``, ``hf_hub_download`` and every library that reads the cache see what hanzo pulled.

What hanzo writes while a blob is in progress lives where no huggingface_hub version looks
(file_download.py, utils/_cache_manager.py, 0.23 to 2.x): not ``blobs/<etag>.incomplete``, which
0.23 up to 1.17 resume by appending to it and then move into place unhashed (hanzo's preallocated
partial would become a blob of zeros), which ``hf cache ls`` counts and ``hf cache prune`` deletes;
and not a new folder in the cache root, which ``scan_cache_dir`` reports as a corrupted repo. The
one folder every version skips and never deletes is ``.locks/``, so::

    .locks/models--org--name/<etag>.lock          huggingface_hub's own lock: hanzo holds it too
                                                  while it writes that blob, so the two never
                                                  write one blob at once
    .locks/hanzo-partial/models--org--name/<etag> hanzo's resumable partial (+ .json state, .lock)
    .locks/hanzo-corrupt/models--org--name/…      blobs found with the wrong bytes, set aside

(same file system as ``blobs/``: finishing is a rename). hanzo does not write ``CACHEDIR.TAG``:
huggingface_hub before 1.x scans it as a repo and reports it as corrupted.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.api import HanzoError, record_verified, set_aside, verify_existing
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


LOCKS = ".locks"
PARTIAL_DIR = "hanzo-partial"
CORRUPT_DIR = "hanzo-corrupt"
#: Temp files huggingface_hub 1.18+ downloads into: ``<etag>.<8 hex>.incomplete``.
_HF_TMP_RE = re.compile(r"^(?P<etag>[0-9a-f]{40}|[0-9a-f]{64})\.[0-9a-f]{8}\.incomplete$")


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """``<cache>/models--org--name``, as huggingface_hub names it."""
    return cache_dir / ("models--" + check_repo_id(repo_id).replace("/", "--"))


class RepoCache:
    """Writes one repo's blobs, snapshot links and refs."""

    def __init__(self, cache_dir: Path, repo_id: str) -> None:
        self.cache_dir = cache_dir
        self.root = repo_folder(cache_dir, repo_id)

    @property
    def folder_name(self) -> str:
        return self.root.name

    def prepare(self, commit: str) -> None:
        """Create the snapshot folder before any blob, as huggingface_hub does, so that a scan never
        sees a repo without ``snapshots/``."""
        self.snapshot(commit).mkdir(parents=True, exist_ok=True)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / check_object_id(etag, "ETag")

    def partial(self, etag: str) -> Path:
        """hanzo's partial download of a blob (see the module docstring for why it lives there)."""
        return self.cache_dir / LOCKS / PARTIAL_DIR / self.folder_name / check_object_id(etag, "ETag")

    def lock_path(self, etag: str) -> Path:
        """huggingface_hub's lock for one blob (file_download.py: ``.locks/<repo folder>/<etag>.lock``)."""
        return self.cache_dir / LOCKS / self.folder_name / f"{check_object_id(etag, 'ETag')}.lock"

    @contextlib.contextmanager
    def blob_lock(self, etag: str, label: str) -> Iterator[None]:
        """Hold huggingface_hub's lock for this blob (a ``filelock.FileLock``, mode 0o664, as its
        ``WeakFileLock`` takes it), so hanzo and huggingface_hub never write one blob at once."""
        from filelock import FileLock, Timeout

        from hanzo_cli.api import info

        path = self.lock_path(etag)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), mode=0o664)
        try:
            lock.acquire(timeout=0.5)
        except Timeout:
            info(f"Waiting for another download of {label} (huggingface_hub or hanzo) to finish...")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def ensure_blob(
        self,
        etag: str,
        *,
        size: int,
        sha256: str | None,
        label: str,
        fetch: Callable[[Path, Path], tuple[str, ...]],
    ) -> bool:
        """Make ``blobs/<etag>`` hold the verified file; return whether it was fetched.

        Under huggingface_hub's lock for the blob: a blob found in place (written by
        huggingface_hub, another tool or an older hanzo) is verified — size, then the LFS sha256
        or the git object id, hashed once and remembered — and set aside when wrong; a missing
        one is fetched with ``fetch(dest, partial)``, which returns the digests it verified. Then
        the leftovers of interrupted downloads of this blob, hanzo's and huggingface_hub's, go:
        nobody else writes them while the lock is held."""
        blob = self.blob(etag)
        with self.blob_lock(etag, label):
            self._adopt_old_partial(etag)
            fetched = False
            if blob.exists() or blob.is_symlink():
                git_blob_id = None if sha256 else etag
                if not verify_existing(blob, sha256, size, git_blob_id=git_blob_id):
                    set_aside(blob, self.corrupt_dir, f"(for {label}) does not match its size or digest")
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                digests = fetch(blob, self.partial(etag))
                _chmod_like_hf(blob)
                record_verified(blob, *digests)
                fetched = True
            self._drop_leftovers(etag)
        return fetched

    @property
    def corrupt_dir(self) -> Path:
        return self.cache_dir / LOCKS / CORRUPT_DIR / self.folder_name

    def _adopt_old_partial(self, etag: str) -> None:
        """hanzo before 1.x kept its partial as ``blobs/<etag>.incomplete``, preallocated to the
        full size, with ``.incomplete.json`` state beside it: a file huggingface_hub < 1.18 would
        "resume" into a blob of zeros. Move it (and its state, so the download resumes) to where
        hanzo keeps partials now. huggingface_hub never writes ``.incomplete.json``, so its own
        ``.incomplete`` is left alone here."""
        blobs = self.root / "blobs"
        old, state = blobs / f"{etag}.incomplete", blobs / f"{etag}.incomplete.json"
        if not state.exists():
            return
        new = self.partial(etag)
        new.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(old, new)
            os.replace(state, new.with_name(new.name + ".json"))
        state.unlink(missing_ok=True)
        (blobs / f"{etag}.incomplete.lock").unlink(missing_ok=True)

    def _drop_leftovers(self, etag: str) -> None:
        """Once the blob is complete: remove interrupted downloads of it. huggingface_hub's
        ``<etag>.incomplete`` (before 1.18) and ``<etag>.<hex>.incomplete`` (1.18+) would show in
        ``hf cache ls``; it never reads them once the blob exists. hanzo's partial and side files too."""
        blobs = self.root / "blobs"
        doomed = [blobs / f"{etag}.incomplete", blobs / f"{etag}.unverified"]
        with contextlib.suppress(OSError):
            doomed += [p for p in blobs.iterdir() if (m := _HF_TMP_RE.match(p.name)) and m["etag"] == etag]
        partial = self.partial(etag)
        doomed += [partial.with_name(partial.name + s) for s in ("", ".json", ".lock", ".unverified")]
        for path in doomed:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in (partial.parent, partial.parent.parent):  # only when nothing else is in progress
            with contextlib.suppress(OSError):
                folder.rmdir()

    def snapshot(self, commit: str) -> Path:
        return self.root / "snapshots" / check_object_id(commit, "commit id")

    def pointer(self, commit: str, path: str) -> Path:
        return self.snapshot(commit) / check_repo_path(path)

    def links_to(self, commit: str, path: str, etag: str) -> bool:
        """Whether ``snapshots/<commit>/<path>`` is a link to ``blobs/<etag>`` (or, where
        huggingface_hub fell back to copies, a file)."""
        pointer = self.pointer(commit, path)
        if pointer.is_symlink():
            return os.path.abspath(pointer.parent / os.readlink(pointer)) == os.path.abspath(self.blob(etag))
        return pointer.is_file()

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
        """Record which commit ``revision`` resolved to (nothing to record for a commit itself),
        only when it changed, as huggingface_hub's ``_cache_commit_hash_for_specific_revision``."""
        if revision == commit:
            return
        ref = self.root / "refs" / check_revision(revision)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if ref.read_text() == commit:
                return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)


def _chmod_like_hf(blob: Path) -> None:
    """Give a new blob the mode a new file in its folder gets, as huggingface_hub's
    ``_chmod_and_move`` does (the downloader creates partials 0600-ish under a strict umask)."""
    probe = blob.parent / f"tmp_{uuid.uuid4()}"
    try:
        probe.touch()
        os.chmod(blob, stat.S_IMODE(probe.stat().st_mode))
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


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
