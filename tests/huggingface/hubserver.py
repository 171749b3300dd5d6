"""A loopback Hugging Face Hub that answers the way huggingface.co does, for what olah cannot do.

Built on the shared :class:`tests.fixtures.fileserver.FileServer` (Range, byte accounting, faults).
It serves, for the repos added with :meth:`FakeHub.add_repo`:

- ``GET /api/models/{org}/{name}/revision/{rev}`` (model info: ``id``, ``sha``, ``siblings``), and
  ``GET|HEAD /api/models/{org}/{name}`` (the same for ``main``: olah's visibility probe),
- ``GET /api/models/{org}/{name}/tree/{rev}?recursive=...`` (``oid``, ``size``, ``lfs`` with sha256),
  ``POST /api/models/{org}/{name}/paths-info/{rev}`` (the same entries for the form's ``paths``; olah
  in proxy mode asks it before serving a file),
- ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}``: files kept in git are answered directly with
  ``ETag`` = git object id and ``X-Repo-Commit``; LFS files get a 302 to a CDN URL on another host
  name (``localhost``) with ``X-Linked-Etag`` = sha256, ``X-Linked-Size`` and ``X-Repo-Commit``,
- the Hub's errors: 404 with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` /
  ``EntryNotFound``, and 401 ``GatedRepo`` for gated repos without the right token.

The bytes of an LFS file are served at ``/cdn/<sha256>`` (:meth:`FakeHub.cdn` gives its
:class:`ServedFile`, whose ``faults`` a test may change); files kept in git at ``/raw/...``.
``head_headers`` and ``tree_overrides`` change HEAD headers and tree entries per path, to play a
hostile server; :meth:`FakeHub.error` answers a Hub error from a route a test adds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote

from tests.fixtures.fileserver import FileServer, Handler, ServedFile

__all__ = ["FakeHub", "HubRepo", "git_blob_id", "lfs_pointer"]


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


@dataclass
class _File:
    data: bytes
    lfs: bool
    served: ServedFile
    sha256: str = ""
    blob_id: str = ""  # of the LFS pointer for LFS files, as in git
    pointer_size: int = 0

    def __post_init__(self) -> None:  # hashed once: the benchmark serves hundreds of MB
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        pointer = lfs_pointer(self.data)
        self.blob_id = git_blob_id(pointer if self.lfs else self.data)
        self.pointer_size = len(pointer)

    def tree_entry(self, path: str) -> dict[str, object]:
        entry: dict[str, object] = {"type": "file", "oid": self.blob_id, "size": len(self.data), "path": path}
        if self.lfs:
            entry["lfs"] = {
                "oid": self.sha256,
                "size": len(self.data),
                "pointerSize": len(lfs_pointer(self.data)),
            }
        return entry


@dataclass
class HubRepo:
    repo_id: str
    commits: dict[str, dict[str, _File]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    gated_token: str | None = None  # gated: only this token may read files
    head_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> HEAD header overrides
    tree_overrides: dict[str, dict[str, object]] = field(default_factory=dict)  # path -> tree entry overrides

    def commit_for(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


class FakeHub:
    """The Hub protocol on a :class:`FileServer`; use ``endpoint`` as ``HF_ENDPOINT``."""

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.repos: dict[str, HubRepo] = {}
        server.add_route("/api/models/", self._api, prefix=True)

    @property
    def endpoint(self) -> str:
        return self.server.url("")

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        revision: str = "main",
        lfs: Callable[[str], bool] = lambda path: path.endswith((".gguf", ".safetensors")),
        gated_token: str | None = None,
    ) -> str:
        """Commit ``files`` (path -> bytes or file) as ``revision`` of ``repo_id``; return the commit id.
        Paths are not validated: a test may list hostile ones."""
        if repo_id not in self.repos:
            self.repos[repo_id] = HubRepo(repo_id)
            self.server.add_route(f"/{repo_id}/resolve/", self._resolve, prefix=True)
        repo = self.repos[repo_id]
        repo.gated_token = gated_token
        commit = hashlib.sha1(os.urandom(16)).hexdigest()
        snapshot: dict[str, _File] = {}
        for path, source in files.items():
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            is_lfs = lfs(path)
            sha = hashlib.sha256(data).hexdigest()
            served_at = f"/cdn/{sha}" if is_lfs else f"/raw/{repo_id}/{commit}/{path}"
            served = self.server.add_file(served_at, data)
            snapshot[path] = _File(data, is_lfs, served)
        repo.commits[commit] = snapshot
        repo.refs[revision] = commit
        return commit

    def cdn(self, data: bytes) -> ServedFile:
        """The served LFS object with these bytes (to add faults or read its byte counters)."""
        return self.server.file(f"/cdn/{hashlib.sha256(data).hexdigest()}")

    # --- routes -------------------------------------------------------------------------------

    def error(
        self, handler: Handler, status: int, code: str, message: str, commit: str | None = None
    ) -> None:
        """Answer as the Hub does: the status, ``X-Error-Code`` and ``X-Error-Message``."""
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        handler.send_bytes(json.dumps({"error": message}).encode(), status, headers, "application/json")

    def _find(self, handler: Handler, parts: list[str]) -> tuple[HubRepo, str] | None:
        """(repo, commit) for ``org/name/<kind>/<rev>...`` or None after answering the error."""
        repo = self.repos.get(f"{parts[0]}/{parts[1]}") if len(parts) >= 4 else None
        if repo is None:
            self.error(handler, 404, "RepoNotFound", "Repository not found")
            return None
        commit = repo.commit_for(unquote(parts[3]))
        if commit is None:
            self.error(handler, 404, "RevisionNotFound", "Invalid rev id")
            return None
        return repo, commit

    def _api(self, handler: Handler) -> None:
        parts = handler.path_only[len("/api/models/") :].split("/")
        form = parse_qs(handler.read_body().decode()) if handler.command == "POST" else {}
        if len(parts) == 2:  # /api/models/{org}/{name}: the model info of main (olah probes it with HEAD)
            parts += ["revision", "main"]
        found = self._find(handler, parts)
        if found is None:
            return
        repo, commit = found
        files = repo.commits[commit]
        if parts[2] == "revision":
            body: object = {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": commit,
                "private": False,
                "gated": "manual" if repo.gated_token else False,
                "siblings": [{"rfilename": p} for p in files],
            }
        elif parts[2] == "tree":
            body = [{**f.tree_entry(p), **repo.tree_overrides.get(p, {})} for p, f in files.items()]
        elif (
            parts[2] == "paths-info" and handler.command == "POST"
        ):  # form ``paths=...``; missing ones left out
            asked = form.get("paths", [])
            body = [{**files[p].tree_entry(p), **repo.tree_overrides.get(p, {})} for p in asked if p in files]
        else:
            handler.send_status(404)
            return
        handler.send_bytes(json.dumps(body).encode(), content_type="application/json")

    def _resolve(self, handler: Handler) -> None:
        parts = handler.path_only.lstrip("/").split("/", 4)
        found = self._find(handler, parts)
        if found is None:
            return
        repo, commit = found
        path = unquote(parts[4])
        if repo.gated_token and handler.headers.get("Authorization") != f"Bearer {repo.gated_token}":
            self.error(handler, 401, "GatedRepo", f"Access to model {repo.repo_id} is restricted.")
            return
        file = repo.commits[commit].get(path)
        if file is None:
            self.error(handler, 404, "EntryNotFound", "Entry not found", commit)
            return
        headers = {"X-Repo-Commit": commit, "ETag": f'"{file.blob_id}"', "Accept-Ranges": "bytes"}
        if file.lfs:
            headers["X-Linked-Etag"] = f'"{file.sha256}"'
            headers["X-Linked-Size"] = str(len(file.data))
            headers["Location"] = self.server.url(file.served.path, host="localhost")
        if handler.command == "HEAD":
            headers.update(repo.head_headers.get(path, {}))
        if file.lfs:
            handler.send_bytes(b"", 302, headers)
        elif handler.command == "HEAD":
            handler.send_response(200)
            for name, value in {**headers, "Content-Length": str(len(file.data))}.items():
                handler.send_header(name, value)
            handler.end_headers()
        else:
            handler.serve_file(file.served)
