"""Talking to the Hub: resolve a name to exact files, and fetch one file resumably and verified.

Metadata comes from huggingface_hub (``model_info`` for the commit, ``list_repo_tree`` at that commit
for paths, sizes, git object ids and LFS sha256s, ``get_hf_file_metadata`` for each file before it
is fetched); bytes come from hanzo's downloader, which resumes across processes — something
huggingface_hub stopped doing in 1.18. Other plugins reach it only through the provider's
:class:`~hanzo_cli.api.FileSource` methods.

Settings are read from the environment at call time (``HF_ENDPOINT``, ``HF_HUB_CACHE`` / ``HF_HOME``,
``HF_HUB_OFFLINE``; the token from ``HF_TOKEN`` or ``hf auth login``), not when huggingface_hub was
imported.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.api import (
    AuthenticationError,
    HanzoError,
    IntegrityError,
    ModelNotFoundError,
    RemoteFileNotFoundError,
)
from hanzo_huggingface.refs import (
    DEFAULT_REVISION,
    check_object_id,
    check_repo_id,
    check_repo_path,
    check_revision,
    is_object_id,
    model_name,
)
from hanzo_huggingface.selection import Choice, choose

if TYPE_CHECKING:
    from hanzo_cli.api import DownloadResult

DEFAULT_ENDPOINT = "https://huggingface.co"
LIBRARY_NAME = "hanzo-cli"


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubSettings:
    """Where the Hub and the cache are, as huggingface_hub would compute them right now."""

    endpoint: str
    cache_dir: Path
    offline: bool

    @classmethod
    def from_env(cls) -> HubSettings:
        env = os.environ.get
        home = env("HF_HOME") or os.path.join(env("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        cache = env("HF_HUB_CACHE") or env("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
        return cls(
            endpoint=(env("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=Path(os.path.expandvars(cache)).expanduser(),
            offline=_is_true(env("HF_HUB_OFFLINE")) or _is_true(env("TRANSFORMERS_OFFLINE")),
        )


@dataclass(frozen=True)
class HubFile:
    """One file of a repo at a commit, with what is needed to fetch and verify it."""

    path: str
    size: int
    blob_id: str  # git object id (sha1 of "blob <size>\\0<content>")
    sha256: str | None  # LFS files only
    url: str  # resolve URL pinned to the commit

    @property
    def etag(self) -> str:
        """What the Hub sends as (X-Linked-)ETag, and huggingface_hub's blob name in the cache."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class Resolution:
    """A name resolved on the Hub: the exact commit and files to fetch."""

    repo_id: str  # spelled as the Hub spells it
    revision: str  # as asked: branch, tag or commit
    commit: str
    files: tuple[HubFile, ...]
    choice: Choice  # which files of the repo these are (one GGUF model, a file, a filtered snapshot)
    endpoint: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def where(self) -> str:
        return where(self.repo_id, self.revision)


def resolve(
    repo_id: str,
    *,
    revision: str | None = None,
    quant: str | None = None,
    file: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    settings: HubSettings | None = None,
) -> Resolution:
    """Resolve a repo and a choice (quant, file, patterns; see :func:`selection.choose`) to files.

    Every path, object id and commit the server sends is validated before anything is returned.
    """
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.hf_api import RepoFile

    from hanzo_cli.api import __version__

    settings = settings or HubSettings.from_env()
    if settings.offline:
        raise HanzoError(f"HF_HUB_OFFLINE is set: cannot look up {repo_id} on {settings.endpoint}")
    revision = check_revision(revision or DEFAULT_REVISION)
    api = HfApi(endpoint=settings.endpoint, library_name=LIBRARY_NAME, library_version=__version__)
    with hub_errors(repo_id, revision, settings.endpoint):
        info = api.model_info(repo_id, revision=revision)
        commit = check_object_id(info.sha or "", "commit id")
        # The server may rename the repo (redirects); its spelling reaches paths, so check it too.
        repo_id = check_repo_id(info.id) if info.id else repo_id
        entries = [
            e for e in api.list_repo_tree(repo_id, revision=commit, recursive=True) if isinstance(e, RepoFile)
        ]
    try:
        listed = {check_repo_path(e.path): e for e in entries}
    except HanzoError as exc:
        raise HanzoError(f"refusing {where(repo_id, revision)}: the server lists an {exc.message}") from None
    choice = choose(
        {path: e.size for path, e in listed.items()},
        quant=quant,
        file=file,
        include=include,
        exclude=exclude,
        where=where(repo_id, revision),
    )
    files = tuple(
        HubFile(
            path=path,
            size=listed[path].size,
            blob_id=check_object_id(listed[path].blob_id, f"object id for {path}"),
            sha256=check_object_id(lfs.sha256, f"sha256 for {path}") if (lfs := listed[path].lfs) else None,
            url=hf_hub_url(repo_id, path, revision=commit, endpoint=settings.endpoint),
        )
        for path in choice.paths
    )
    return Resolution(repo_id, revision, commit, files, choice, settings.endpoint)


def fetch_file(
    resolution: Resolution, file: HubFile, dest: Path, *, partial: Path | None = None
) -> DownloadResult:
    """Download ``file`` to ``dest`` through hanzo's downloader: resumable (``partial`` is kept across
    processes), then verified against the LFS sha256, or the git object id for files kept in git.

    First a HEAD on the file's URL (huggingface_hub's ``get_hf_file_metadata``) confirms access —
    gated and private repos refuse here, not in the listing — and that the server's ETag, size and
    commit agree with the listing.
    """
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # lazy facade

    from hanzo_cli.api import __version__, download

    label = f"{file.path} in {resolution.where()}"
    with hub_errors(resolution.repo_id, resolution.revision, resolution.endpoint, file.path):
        meta = get_hf_file_metadata(file.url, library_name=LIBRARY_NAME, library_version=__version__)
    if meta.commit_hash != resolution.commit:
        raise HanzoError(
            f"{label}: the server answered for commit {meta.commit_hash!r}, not {resolution.commit}"
        )
    if _etag_disagrees(file, meta.etag) or (meta.size is not None and meta.size != file.size):
        raise HanzoError(
            f"{label}: the server's metadata disagree (ETag {str(meta.etag)[:80]!r}, size {meta.size}; "
            f"the listing says {file.etag}, {file.size} bytes)"
        )
    headers = build_hf_headers(library_name=LIBRARY_NAME, library_version=__version__)
    if file.sha256:
        return download(
            file.url,
            dest,
            size=file.size,
            sha256=file.sha256,
            headers=headers,
            desc=file.path,
            partial=partial,
        )
    # Files kept in git have no sha256 on the Hub: verify their git object id before they become
    # visible, staged beside the partial (outside the cache's names when the caller chose so).
    staged = (partial or dest).with_name((partial or dest).name + ".unverified")
    result = download(file.url, staged, size=file.size, headers=headers, desc=file.path, partial=partial)
    if git_blob_id(staged) != file.blob_id:
        staged.unlink()
        raise IntegrityError(f"git object id mismatch for {label}: expected {file.blob_id}")
    os.replace(staged, dest)
    return result


def _etag_disagrees(file: HubFile, etag: str | None) -> bool:
    """Whether the HEAD's (X-Linked-)ETag contradicts the listing.

    An LFS file's must be its sha256. A file kept in git is checked by its git object id once
    downloaded, so only an ETag that is an object id is a claim to compare: a mirror serving the file
    from its own cache may send an opaque validator instead (olah offline: a hash of the URL).
    """
    if file.sha256 is not None:
        return etag != file.sha256
    return etag != file.blob_id and is_object_id(etag)


def where(repo_id: str, revision: str | None) -> str:
    """``org/repo`` or ``org/repo@v1``: how messages name a repo at a revision."""
    return model_name(repo_id, None if revision == DEFAULT_REVISION else revision)


def git_blob_id(path: Path) -> str:
    """The git object id of a file's content: sha1 of ``blob <size>\\0`` followed by the bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _status_text(status: int | str) -> str:
    """``HTTP 504 (Gateway Timeout)``: the reason phrase says more than the number alone."""
    from http import HTTPStatus

    try:
        return f"HTTP {status} ({HTTPStatus(int(status)).phrase})"
    except ValueError:
        return f"HTTP {status}"


def _gateway_hint(status: int | str, endpoint: str) -> str:
    # 502/504 come from a gateway that got no good answer from its upstream: with HF_ENDPOINT set that
    # is usually a mirror (olah in proxy mode) that cannot reach the Hub and does not serve its cache.
    if status in (502, 504) and endpoint != DEFAULT_ENDPOINT:
        return " (the mirror at HF_ENDPOINT could not reach its upstream)"
    return ""


@contextmanager
def hub_errors(repo_id: str, revision: str, endpoint: str, path: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one clear line each (see hanzo_cli.api's error classes)."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    login = "set HF_TOKEN or run `hf auth login`"
    try:
        yield
    except GatedRepoError:
        raise HanzoError(
            f"{repo_id} is gated: accept its conditions at {endpoint}/{repo_id}, then {login}"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"repository {repo_id} not found on {endpoint} (if it is private, {login})"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"revision {revision!r} not found in {repo_id}") from None
    except RemoteEntryNotFoundError:
        # The listing named this file: its absence is a broken repo, not a missing model.
        raise RemoteFileNotFoundError(f"file {path!r} not found in {where(repo_id, revision)}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status in (401, 403):
            raise AuthenticationError(f"access to {repo_id} denied (HTTP {status}); {login}") from None
        hint = _gateway_hint(status, endpoint)
        raise HanzoError(
            f"the Hub at {endpoint} answered {_status_text(status)} for {repo_id}{hint}"
        ) from None
    except OfflineModeIsEnabled:
        raise HanzoError(f"HF_HUB_OFFLINE is set: cannot look up {repo_id} on {endpoint}") from None
    except httpx2.TransportError as exc:
        raise HanzoError(f"cannot reach the Hub at {endpoint}: {exc or type(exc).__name__}") from None
