"""The runtime interface: in-process inference on a local GGUF file, and runtime selection.

hanzo reads ``general.architecture`` from the GGUF and picks the first runtime that declares both
the architecture and the task, unless the user forces one with ``--runtime``. "First" is
deterministic whatever order plugins load in: runtimes are sorted by :attr:`Runtime.priority`,
then by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hanzo_cli.errors import HanzoError, MissingPluginError
from hanzo_cli.extras import missing_plugin_hint

TASKS = ("embed", "rerank", "generate")


class Embedder(Protocol):
    """A loaded embedding model."""

    #: Native vector size.
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One pooled vector per text, in order (normalisation is the caller's business)."""
        ...

    def close(self) -> None: ...


class Reranker(Protocol):
    """A loaded reranker: relevance scores of documents for a query."""

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in order; higher is more relevant."""
        ...

    def close(self) -> None: ...


class Runtime(ABC):
    """Base class of runtimes. Subclass it and register an instance with ``register_runtimes``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Tasks this runtime can do: a subset of ``TASKS``.
    tasks: ClassVar[frozenset[str]] = frozenset()
    #: GGUF ``general.architecture`` values this runtime loads.
    architectures: ClassVar[frozenset[str]] = frozenset()
    #: Lower is tried first when several runtimes can run a model (ties: by name).
    priority: ClassVar[int] = 100

    def supports(self, architecture: str | None, task: str) -> bool:
        return task in self.tasks and architecture in self.architectures

    def summary(self) -> str:
        """What it can do, for error messages: ``"embed/rerank on bert, llama"``."""
        tasks = "/".join(t for t in TASKS if t in self.tasks) or "nothing"
        archs = ", ".join(sorted(self.architectures)) or "none"
        return f"{tasks} on {archs}"

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        raise HanzoError(f"runtime {self.name!r} cannot embed")

    def load_reranker(self, path: Path, **options: Any) -> Reranker:
        raise HanzoError(f"runtime {self.name!r} cannot rerank")

    def version(self) -> str | None:
        """The version of the library behind the runtime (kept with benchmark results), if known."""
        return None

    @abstractmethod
    def available(self) -> bool:
        """Whether the runtime's library imports (checked without loading any model)."""


def choose_runtime(
    runtimes: Sequence[Runtime], architecture: str | None, task: str, forced: str | None = None
) -> Runtime:
    """The runtime to use for a model of ``architecture`` and ``task``, or a clear error."""
    if forced:
        by_name = {r.name: r for r in runtimes}
        if forced not in by_name:
            hint = missing_plugin_hint("runtime", forced)
            known = ", ".join(by_name) or "none installed"
            raise HanzoError(f"unknown runtime {forced!r} (installed: {known}){hint}")
        runtime = by_name[forced]
        if not runtime.supports(architecture, task):
            raise HanzoError(
                f"runtime {forced!r} cannot {task} a {architecture or 'unknown'}-architecture model "
                f"({describe(runtime)})"
            )
        return runtime
    for runtime in runtimes:
        if runtime.supports(architecture, task):
            return runtime
    if not runtimes:
        raise MissingPluginError(f"no runtime is installed{missing_plugin_hint('runtime', 'llamacpp')}")
    listing = "; ".join(f"{r.name}: {describe(r)}" for r in runtimes)
    raise HanzoError(
        f"no installed runtime can {task} a model of architecture {architecture or 'unknown'!r} ({listing})"
    )


def describe(runtime: Runtime) -> str:
    return runtime.summary()
