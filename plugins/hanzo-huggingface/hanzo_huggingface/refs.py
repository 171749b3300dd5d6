"""Hugging Face model names: ``org/repo[@revision][:QUANT]`` or ``org/repo[@revision]/path/in/repo``.

Also accepted: Ollama's spelling ``hf.co/org/repo:QUANT`` and ``huggingface.co/org/repo`` (with or
without ``https://``); ``:latest`` (Ollama's default tag) means "no quant asked for". Parsing does no
I/O and imports nothing heavy, because ``accepts()`` runs for every reference a user types.

Names and paths end up in file-system paths (the Hugging Face cache), so everything is validated
here, whether it came from the user or from a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hanzo_cli.api import HanzoError

_HOSTS = ("hf.co/", "huggingface.co/")
_SCHEMES = ("https://", "http://")
# One part of a repo id (the Hub's own rule): word characters, '.' and '-', not at either end.
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
# One component of a revision (branch, tag or commit); ``refs/pr/1`` has three.
_REV_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_QUANT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HEX_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAX_REPO_ID = 96
MAX_PATH = 1024
DEFAULT_REVISION = "main"


@dataclass(frozen=True)
class HubRef:
    """A parsed name: which repo, which revision, and optionally a quant or a file in it."""

    repo_id: str
    revision: str | None = None
    quant: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return model_name(self.repo_id, self.revision, quant=self.quant, path=self.path)


def parse(text: str) -> HubRef:
    """Parse a Hugging Face model name; raise HanzoError with the reason when it is not one."""
    ref = text.strip()
    for scheme in _SCHEMES:
        if ref.lower().startswith(scheme):
            ref = ref[len(scheme) :]
            if not ref.lower().startswith(_HOSTS):
                raise HanzoError(f"{text!r} is not a Hugging Face URL (expected hf.co/ or huggingface.co/)")
    for host in _HOSTS:
        if ref.lower().startswith(host):
            ref = ref[len(host) :]
            break
    head, colon, quant = ref.partition(":")
    org, _, rest = head.partition("/")
    name_rev, _, path = rest.partition("/")
    name, at, revision = name_rev.partition("@")
    if not org or not name:
        raise HanzoError(f"{text!r} is not a Hugging Face model name: expected org/repo[:QUANT]")
    repo_id = check_repo_id(f"{org}/{name}")
    if at and not _REV_PART.fullmatch(revision):
        raise HanzoError(f"invalid revision {revision!r} in {text!r} (use --revision for refs with '/')")
    if path:
        check_repo_path(path)
    if colon:
        if not _QUANT.fullmatch(quant):
            raise HanzoError(f"invalid quantization {quant!r} in {text!r}")
        if path:
            raise HanzoError(f"{text!r} names both a file and a quantization; give one of them")
    return HubRef(
        repo_id=repo_id,
        revision=revision if at else None,
        quant=quant if colon and quant.lower() != "latest" else None,
        path=path or None,
    )


def check_repo_id(repo_id: str) -> str:
    org, sep, name = repo_id.partition("/")
    valid = (
        sep
        and _REPO_PART.fullmatch(org)
        and _REPO_PART.fullmatch(name)
        and len(repo_id) <= MAX_REPO_ID
        and "--" not in repo_id
        and ".." not in repo_id
    )
    if not valid:
        raise HanzoError(
            f"invalid Hugging Face repo id {repo_id!r}: expected org/repo (letters, digits, _ . -)"
        )
    return repo_id


def check_revision(revision: str) -> str:
    """A branch, tag or commit that is safe as the path ``refs/<revision>`` (``refs/pr/1`` is fine)."""
    parts = revision.split("/")
    if len(revision) > 255 or not all(_REV_PART.fullmatch(p) and ".." not in p for p in parts):
        raise HanzoError(f"invalid revision {revision!r}")
    return revision


def check_repo_path(path: str) -> str:
    """A relative path in a repo, safe to join to a folder: not absolute, no '..', '\\' or control chars."""
    parts = path.split("/")
    unsafe = (
        not path
        or len(path) > MAX_PATH
        or "\\" in path
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
        or any(p in ("", ".", "..") for p in parts)
    )
    if unsafe:
        raise HanzoError(f"unsafe file name {path!r} (absolute, '..', '\\' or control characters)")
    return path


def check_object_id(value: str, what: str) -> str:
    """A git object id or sha256 (40 or 64 lower-case hex digits): used as a blob file name."""
    if not _HEX_ID.fullmatch(value):
        raise HanzoError(f"the server sent an invalid {what}: {value[:80]!r}")
    return value


def is_commit(revision: str) -> bool:
    return bool(_HEX_ID.fullmatch(revision))


def is_object_id(value: str | None) -> bool:
    """A git object id or sha256 (what :func:`check_object_id` accepts), without raising."""
    return bool(value and _HEX_ID.fullmatch(value))


def model_name(
    repo_id: str, revision: str | None = None, *, quant: str | None = None, path: str | None = None
) -> str:
    """The name a user types after ``hf:`` for this repo, revision and quant or file."""
    name = f"{repo_id}@{revision}" if revision else repo_id
    if quant:
        return f"{name}:{quant}"
    if path:
        return f"{name}/{path}"
    return name
