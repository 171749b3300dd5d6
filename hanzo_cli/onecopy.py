"""One copy on disk: the same bytes (same sha256) kept by several providers — the Hugging Face
cache, Ollama's blobs, LM Studio's folder, hanzo's store — become one file with several names.

* **At pull time**, :func:`link_verified` puts a file hanzo has already verified elsewhere at the
  path a provider wants, instead of downloading it: a hard link on the same file system, a reflink
  (copy-on-write clone) where the file system offers one, else a local copy checked as it is read.
  Which one is said aloud. Verified files are found through the records of
  :mod:`hanzo_cli.verified`, which every provider writes when it verifies a file.
* **Afterwards**, :func:`dedup` links existing duplicates among the files of listed models.

Every store writes new files by rename and never in place, and deleting a name leaves the others,
so a model deleted in one provider never breaks another's copy. A replacement is atomic (link to a
temporary name, then rename over the duplicate): a reader sees the old file or the new one, and
both have the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError
from hanzo_cli.fsutil import fsync_dir
from hanzo_cli.output import info, warn
from hanzo_cli.plugins import registry
from hanzo_cli.verified import record_verified, verify_existing

_FICLONE = 0x40049409  # linux/fs.h: clone a whole file (btrfs, XFS with reflink, bcachefs)


def _verified_records() -> Iterator[dict[str, Any]]:
    from hanzo_cli.constants import cache_dir

    folder = cache_dir() / "verified"
    if not folder.is_dir():
        return
    for record in folder.glob("*.json"):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            yield data


def verified_copies(sha256: str, size: int) -> list[Path]:
    """Files hanzo verified to hold these bytes and that have not changed since (same device,
    inode, size and mtime as when they were hashed)."""
    found = []
    for data in _verified_records():
        if sha256 not in (data.get("digests") or ()):
            continue
        path = Path(data["path"])
        try:
            st = path.stat()
        except OSError:
            continue
        identity = {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if st.st_size == size and data.get("identity") == identity:
            found.append(path)
    return found


def _recorded_sha256() -> dict[tuple[int, int, int, int], str]:
    """(device, inode, size, mtime_ns) -> sha256 of every file a provider verified and recorded."""
    known = {}
    for data in _verified_records():
        identity = data.get("identity") or {}
        sha = next((d for d in data.get("digests") or () if isinstance(d, str) and len(d) == 64), None)
        try:
            key = (
                int(identity["dev"]),
                int(identity["ino"]),
                int(identity["size"]),
                int(identity["mtime_ns"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if sha is not None:
            known[key] = sha
    return known


def _reflink(src: Path, dest: Path) -> None:
    import fcntl

    with open(src, "rb") as fin, open(dest, "wb") as fout:
        fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())


def _copy_checked(src: Path, dest: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(1 << 20):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    if digest.hexdigest() != sha256:
        raise OSError(errno.EIO, f"{src} changed while it was copied")


def place(src: Path, dest: Path, sha256: str, *, allow_copy: bool) -> str | None:
    """Put ``src``'s bytes at ``dest`` atomically: "hard link", "reflink" or (when allowed) "copy";
    None when none could be made (nothing changes then)."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.onecopy")
    how = None
    try:
        try:
            os.link(src, tmp)
            how = "hard link"
        except OSError:
            try:
                _reflink(src, tmp)
                how = "reflink"
            except OSError:
                tmp.unlink(missing_ok=True)
                if not allow_copy:
                    return None
                _copy_checked(src, tmp, sha256)
                how = "copy"
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return how


def link_verified(sha256: str, size: int, dest: Path) -> bool:
    """Put a file already verified elsewhere at ``dest`` instead of downloading it; False when
    there is none (the caller downloads)."""
    for src in verified_copies(sha256, size):
        if src.resolve() == dest.resolve():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        how = place(src, dest, sha256, allow_copy=True)
        if how is not None:
            record_verified(dest, sha256)
            info(f"{dest.name}: {how} of the verified {src}, nothing downloaded")
            return True
    return False


@dataclass(frozen=True)
class Linked:
    sha256: str
    path: Path
    source: Path
    size: int
    how: str  # "hard link", "reflink", "would link", or why it was left as is

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "path": str(self.path),
            "source": str(self.source),
            "size": self.size,
            "how": self.how,
        }


def dedup(*, dry_run: bool) -> list[Linked]:
    """Link every duplicate among the listed models' files (same sha256, verified) to one copy."""
    groups: dict[str, dict[tuple[int, int], Path]] = {}
    recorded = _recorded_sha256()
    for provider in registry().providers.values():
        try:
            models = list(provider.list())
        except HanzoError as exc:
            warn(f"{provider.name}: {exc.message}")
            continue
        for model in models:
            for f in model.files:
                real = Path(f.path).resolve()  # the HF cache's snapshot links point at its blobs
                try:
                    st = real.stat()
                except OSError:
                    continue
                digest = f.digest or ""
                if digest.startswith("sha256:") and len(digest) == 71:
                    sha = digest[7:]
                elif (known := recorded.get((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))) is not None:
                    sha = known  # a provider that does not list digests (LM Studio) verified it
                else:
                    continue
                groups.setdefault(sha, {}).setdefault((st.st_dev, st.st_ino), real)
    done: list[Linked] = []
    for sha, files in sorted(groups.items()):
        if len(files) < 2:
            continue
        # Keep the copy that already has the most names; link the others to it.
        paths = sorted(files.values(), key=lambda p: (-p.stat().st_nlink, str(p)))
        source, rest = paths[0], paths[1:]
        size = source.stat().st_size
        if not verify_existing(source, sha, size):
            warn(f"{source} does not hold sha256 {sha}: not used as a copy")
            continue
        for path in rest:
            if not verify_existing(path, sha, size):
                warn(f"{path} does not hold sha256 {sha}: left as is")
                continue
            if dry_run:
                done.append(Linked(sha, path, source, size, "would link"))
                continue
            how = place(source, path, sha, allow_copy=False)
            if how is None:
                done.append(Linked(sha, path, source, size, "left as is: another file system, no reflink"))
                continue
            record_verified(path, sha)
            done.append(Linked(sha, path, source, size, how))
    return done


def saved_bytes(done: list[Linked]) -> int:
    return sum(d.size for d in done if d.how in ("hard link", "reflink", "would link"))
