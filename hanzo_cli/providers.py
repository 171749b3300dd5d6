"""The provider interface: what a model source (Ollama, Hugging Face, LM Studio, …) implements.

A provider needs only ``name``, :meth:`Provider.pull` and :meth:`Provider.list`; everything else has
a sensible default. Providers fetch bytes with :func:`hanzo_cli.api.download` and, when they keep
models in Ollama's layout, write them with :class:`hanzo_cli.api.Store`.

Two optional capabilities are declared here so plugins can offer them to each other without
importing each other: :meth:`Provider.serving_url` (a provider whose own server can serve a model,
which the node then uses) and :class:`FileSource` (a provider that resolves repository names to
verified files and fetches them into any folder; LM Studio pulls through the Hugging Face one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from hanzo_cli.errors import HanzoError, ModelNotFoundError


@dataclass
class ModelFile:
    """One file of a model on disk (the GGUF, a template, a license, a shard …)."""

    path: Path
    size: int
    digest: str | None = None  # "sha256:<hex>" where known
    kind: str = "model"  # model, template, params, license, config, shard, …

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "size": self.size, "digest": self.digest, "kind": self.kind}


@dataclass
class ModelInfo:
    """A model as a provider reports it. ``path`` is the main model file (the GGUF, or the folder of
    a safetensors model) if local."""

    provider: str
    name: str
    size: int = 0
    digest: str | None = None
    path: Path | None = None
    modified_at: datetime | None = None
    files: list[ModelFile] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``provider:name``: a reference that names exactly this model."""
        return f"{self.provider}:{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "digest": self.digest,
            "size": self.size,
            "path": str(self.path) if self.path else None,
            "modified_at": self.modified_at.isoformat() if self.modified_at else None,
            "files": [f.to_json() for f in self.files],
            "details": self.details,
        }


@dataclass(frozen=True)
class PullOption:
    """A provider-specific option of ``hanzo model:pull``, declared as data.

    Several providers may declare an option of the same ``name`` (``--file``, ``--revision``); they
    must agree on its shape (flags, ``is_flag``, ``multiple``). ``model:pull`` shows which providers
    take each option and refuses one the chosen provider does not declare.
    """

    name: str  # the Python name, the key in PullOptions.extra: "file", "via_lms"
    flags: tuple[str, ...]  # ("--file",)
    help: str
    metavar: str | None = None
    is_flag: bool = False
    multiple: bool = False

    def shape(self) -> tuple[tuple[str, ...], bool, bool]:
        return (self.flags, self.is_flag, self.multiple)

    def is_set(self, value: Any) -> bool:
        """Whether ``value`` (as Click parsed it) means the user gave the option."""
        return bool(value) if (self.is_flag or self.multiple) else value is not None


@dataclass(frozen=True)
class PullOptions:
    """What ``model:pull`` passes to a provider.

    ``extra`` holds the values of the provider's own :attr:`Provider.pull_options` that the user gave,
    keyed by the option's ``name`` (an option not given is absent).
    """

    insecure: bool = False
    quiet: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """Base class of model providers. Subclass it and register an instance with
    ``register_providers``.
    """

    #: What users type after ``--provider`` or before the colon of ``NAME:model``.
    name: ClassVar[str]
    #: Other prefixes that select this provider (``hf`` for ``huggingface``).
    prefixes: ClassVar[tuple[str, ...]] = ()
    #: One line shown by ``hanzo plugins`` and in errors.
    description: ClassVar[str] = ""
    #: Lower runs first when a bare name could belong to several providers.
    priority: ClassVar[int] = 100
    #: False for providers that only hold models put there by hand (``local``).
    can_pull: ClassVar[bool] = True
    #: The provider-specific options of ``hanzo model:pull`` this provider takes.
    pull_options: ClassVar[Sequence[PullOption]] = ()

    def accepts(self, name: str) -> bool:
        """Whether ``name`` is syntactically a name of this provider (no I/O)."""
        return True

    @abstractmethod
    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        """Fetch the model (resuming and verifying) and return it as it now is on disk.

        Raise :class:`~hanzo_cli.errors.ModelNotFoundError` when the source has no such model (the
        next provider is tried); any other error ends the pull.
        """

    @abstractmethod
    def list(self) -> Iterable[ModelInfo]:
        """Every model this provider has locally (or on its server)."""

    def get(self, name: str) -> ModelInfo | None:
        """The local model called ``name``, or None. Default: a case-insensitive match in list()."""
        wanted = self.normalize(name)
        for info in self.list():
            if self.normalize(info.name) == wanted:
                return info
        return None

    def normalize(self, name: str) -> str:
        """A canonical spelling used to compare names (default: lower case)."""
        return name.strip().lower()

    def show(self, name: str) -> ModelInfo:
        info = self.get(name)
        if info is None:
            raise ModelNotFoundError(f"model {name!r} not found in {self.name}")
        return info

    def delete(self, name: str) -> ModelInfo:
        """Remove the model's files; return what was removed."""
        raise HanzoError(f"provider {self.name!r} cannot delete models")

    def serving_url(self, model: ModelInfo) -> str | None:
        """The base URL of a running server of this provider's that serves ``model`` through
        Ollama's API (``/api/embed`` …), or None. The node uses it instead of loading the model
        itself. Default: None."""
        return None

    # -- lifecycle (model:outdated, model:update, model:lock); see hanzo_cli.updates ----------------

    def installed_version(self, model: ModelInfo) -> str | None:
        """What this machine has of ``model``: a manifest digest or a commit. Default: its digest."""
        return model.digest

    def is_pinned(self, model: ModelInfo) -> bool:
        """Whether ``model`` was pulled by an exact version (a digest, a commit), so that
        ``model:update`` never moves it. Default: False."""
        return False

    def remote_version(self, model: ModelInfo, options: PullOptions) -> RemoteVersion | None:
        """What ``model``'s name points at upstream now, or None when this provider cannot tell
        (no source to ask). Raise :class:`~hanzo_cli.errors.HanzoError` when the source cannot be
        reached (offline, auth, gone): the model is then reported ``unreachable``. At most one
        request when nothing changed."""
        return None

    def update(self, model: ModelInfo, options: PullOptions) -> ModelInfo:
        """Move ``model`` to what its name points at now: fetch only what is missing, switch the
        name once complete, then remove what only the old version used. Default: pull it again."""
        return self.pull(model.name, options)

    def pull_exact(self, name: str, version: str, options: PullOptions) -> ModelInfo:
        """Pull ``name`` exactly at ``version`` (what :meth:`installed_version` reported on the
        machine that wrote a lock file), or refuse when the source no longer has it."""
        raise HanzoError(f"provider {self.name!r} cannot pull a model at an exact version")

    def exact_name(self, name: str, version: str) -> str:
        """The name :meth:`pull_exact` leaves the model under (default: ``name`` itself)."""
        return name

    # -- disk (model:du, model:prune); see hanzo_cli.diskusage -------------------------------------

    def reclaimable(self, partials_older_than: float) -> Sequence[Reclaimable]:
        """Files of this provider's store that no model needs: orphan blobs, partial downloads
        untouched for ``partials_older_than`` seconds and not being written (their lock is free).
        Never a file a manifest, snapshot or running pull still uses. Default: none."""
        return []

    def reclaim(self, items: Sequence[Reclaimable], partials_older_than: float) -> Sequence[Reclaimable]:
        """Remove those of ``items`` that are still reclaimable now (checked again under the
        store's locks); return what was removed. Default: nothing."""
        return []


@dataclass(frozen=True)
class RemoteFile:
    """One file of a resolved repository: its path in the repo, size and sha256 where known."""

    path: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class Reclaimable:
    """A file :meth:`Provider.reclaimable` says no model needs, and why."""

    provider: str
    path: Path
    size: int
    reason: str  # "orphan blob", "stale partial"

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "path": str(self.path), "size": self.size, "reason": self.reason}


@dataclass(frozen=True)
class RemoteVersion:
    """What a local model's name points at upstream now (:meth:`Provider.remote_version`).

    ``files`` are that version's files (a layer's kind or a path in the repo, size, sha256 where
    known); ``fetch_bytes`` is what an update would download (the files this machine lacks).
    """

    version: str  # a manifest digest ("sha256:<hex>") or a commit
    files: tuple[RemoteFile, ...] = ()
    fetch_bytes: int = 0


@dataclass(frozen=True)
class Resolved:
    """What :meth:`FileSource.resolve_files` found: exact files at an exact commit.

    ``gguf`` is set when the files form one GGUF model; ``default_among`` when its quant was chosen
    by preference rather than asked for (it lists the quants there were). ``handle`` is the source's
    own data for :meth:`FileSource.fetch_file`; callers pass it back untouched.
    """

    repo_id: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    where: str
    gguf: Any = None  # hanzo_cli.ggufnames.GGUFModel
    default_among: str | None = None
    handle: Any = field(default=None, repr=False, compare=False)


class FileSource(ABC):
    """A provider that resolves repository names to files and fetches them into any folder.

    Another plugin finds one with ``hanzo_cli.api.file_source("huggingface")`` and never imports the
    plugin that implements it.
    """

    @abstractmethod
    def resolve_files(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        quant: str | None = None,
        file: str | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> Resolved:
        """Resolve a repo and a choice (a quant, a file, patterns, or the default) to files."""

    @abstractmethod
    def fetch_file(self, resolved: Resolved, file: RemoteFile, dest: Path) -> str:
        """Download ``file`` to ``dest`` resumably, verify it, and return its sha256 (hex).

        Nothing appears at ``dest`` until it is verified; files in progress are kept only under
        the names :meth:`side_files` lists.
        """

    def side_files(self, dest: Path) -> list[Path]:
        """Files :meth:`fetch_file` may write beside ``dest`` while it works."""
        from hanzo_cli.download import side_files

        return side_files(dest)
