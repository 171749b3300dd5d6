"""hanzo_cli.verified: files found in place are hashed once, re-checked when they change, and set
aside (never silently deleted) when wrong."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hanzo_cli import verified
from hanzo_cli.verified import record_verified, set_aside, verify_existing


def test_verified_once_then_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"weights" * 1000)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    reads: list[Path] = []
    real = verified.file_digests
    monkeypatch.setattr(verified, "file_digests", lambda p: reads.append(p) or real(p))

    assert verify_existing(path, sha, 7000)
    assert verify_existing(path, f"sha256:{sha}", 7000)
    assert reads == [path]  # hashed once
    assert not verify_existing(path, sha, 7001)  # size first, always
    assert not verify_existing(path, "0" * 64, 7000)

    path.write_bytes(b"WEIGHTS" * 1000)  # same size, new content and mtime
    os.utime(path, ns=(1, 1))
    assert not verify_existing(path, sha, 7000)
    assert len(reads) == 3


def test_git_object_ids_and_records_of_a_download(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    data = b'{"hidden_size": 384}'
    path.write_bytes(data)
    git_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert verify_existing(path, None, len(data), git_blob_id=git_id)
    assert not verify_existing(path, None, len(data), git_blob_id="1" * 40)
    assert verify_existing(path, None, len(data))  # size only when no digest is known
    other = tmp_path / "downloaded"
    other.write_bytes(b"x")
    record_verified(other, "a" * 64)  # what a download just hashed is trusted without a re-read
    assert verify_existing(other, "a" * 64, 1)


def test_set_aside_moves_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "blobs" / "sha256-abc"
    path.parent.mkdir()
    path.write_bytes(b"bad")
    moved = set_aside(path, tmp_path / ".hanzo-corrupt", "does not match its digest")
    assert not path.exists() and moved.read_bytes() == b"bad" and moved.parent.name == ".hanzo-corrupt"
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("Warning: ") and str(path) in line and str(moved) in line
