"""The provider interface: what a model source (Ollama, Hugging Face, LM Studio, …) implements.

A provider needs only ``name``, :meth:`Provider.pull` and :meth:`Provider.list`; everything else
has a sensible default. Providers fetch bytes with :func:`hanzo_cli.download.download` and, when
they keep models in hanzo's store, write them with :class:`hanzo_cli.store.Store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hanzo_cli.errors import HanzoError, NotFoundError

if TYPE_CHECKING:
    import click


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
    """A model as a provider reports it. ``path`` is the main model file (the GGUF) if local."""

    provider: str
    name: str
    size: int = 0
    digest: str | None = None
    path: Path | None = None
    modified_at: datetime | None = None
    files: list[ModelFile] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

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


def mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


@dataclass(frozen=True)
class PullOptions:
    """What ``model:pull`` passes to a provider.

    ``extra`` holds the values of the provider-specific options the provider declared in
    :attr:`Provider.pull_options` (keyed by the option's Python name).
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
    #: Extra ``click.Option`` objects this provider adds to ``hanzo model:pull``.
    pull_options: ClassVar[Sequence[click.Option]] = ()

    def accepts(self, name: str) -> bool:
        """Whether ``name`` is syntactically a name of this provider (no I/O)."""
        return True

    @abstractmethod
    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        """Fetch the model (resuming and verifying) and return it as it now is on disk."""

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
            raise NotFoundError(f"model {name!r} not found in {self.name}")
        return info

    def delete(self, name: str) -> ModelInfo:
        """Remove the model's files; return what was removed."""
        raise HanzoError(f"provider {self.name!r} cannot delete models")
