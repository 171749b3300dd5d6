"""The runtime interface: in-process inference on a local model, and runtime selection.

A model has a format, ``gguf`` (one GGUF file) or ``safetensors`` (a Hub model folder: config.json,
tokenizer, ``*.safetensors``), and an architecture: the GGUF's ``general.architecture``, or the
folder's config.json ``model_type``. hanzo picks the first runtime that reads the format and
declares both the architecture and the task, unless the user forces one with ``--runtime``. "First"
is deterministic whatever order plugins load in: runtimes are sorted by :attr:`Runtime.priority`,
then by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SamplingOptions:
    """How a generator picks tokens; None leaves a setting at the runtime's default."""

    max_tokens: int | None = None  # None: until the end of text or a full context
    temperature: float | None = None  # 0: always the most likely token
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # generation ends before the first of these


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of generated text. The last chunk has ``finish_reason`` ("stop": end of text or a stop
    string; "length": ``max_tokens`` or the context) and the prompt's and completion's token counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generator(Protocol):
    """A loaded text-generation model (prompt completion; chat through the model's template).

    A generator may also have ``parallel: int``: how many :meth:`generate` calls it decodes at once
    when they come from different threads (the node then runs them side by side). Without it, calls
    are made one at a time.
    """

    #: Tokens the loaded context holds, prompt and completion together.
    context_length: int

    def generate(self, prompt: str, options: SamplingOptions) -> Iterator[GenerationChunk]:
        """Complete ``prompt``, yielding text as it comes; stopping the iteration stops generating."""
        ...

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], template: str | None = None) -> str:
        """The prompt for ``messages`` ({role, content}) by the model's chat template, or ``template``
        (a Jinja chat template) when given; HanzoError when the model has none."""
        ...

    def close(self) -> None: ...


class Runtime(ABC):
    """Base class of runtimes. Subclass it and register an instance with ``register_runtimes``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Tasks this runtime can do: a subset of ``TASKS``.
    tasks: ClassVar[frozenset[str]] = frozenset()
    #: Model formats this runtime reads: ``gguf`` and/or ``safetensors`` (a model folder).
    formats: ClassVar[frozenset[str]] = frozenset({"gguf"})
    #: GGUF ``general.architecture`` values this runtime loads.
    architectures: ClassVar[frozenset[str]] = frozenset()
    #: config.json ``model_type`` values of the safetensors folders this runtime loads.
    folder_architectures: ClassVar[frozenset[str]] = frozenset()
    #: Lower is tried first when several runtimes can run a model (ties: by name).
    priority: ClassVar[int] = 100

    def supports(self, architecture: str | None, task: str, format: str = "gguf") -> bool:
        if task not in self.tasks or format not in self.formats:
            return False
        return architecture in (self.folder_architectures if format == "safetensors" else self.architectures)

    def summary(self) -> str:
        """What it can do, for error messages: ``"embed/rerank on bert, llama"``."""
        tasks = "/".join(t for t in TASKS if t in self.tasks) or "nothing"
        parts = []
        if "gguf" in self.formats:
            parts.append(", ".join(sorted(self.architectures)) or "none")
        if "safetensors" in self.formats:
            parts.append(f"safetensors {', '.join(sorted(self.folder_architectures)) or 'none'}")
        return f"{tasks} on {'; '.join(parts) or 'none'}"

    def load_embedder(self, path: Path, **options: Any) -> Embedder:
        """Load ``path``: a GGUF file, or a model folder for a runtime that reads safetensors."""
        raise HanzoError(f"runtime {self.name!r} cannot embed")

    def load_reranker(self, path: Path, **options: Any) -> Reranker:
        raise HanzoError(f"runtime {self.name!r} cannot rerank")

    def load_generator(self, path: Path, **options: Any) -> Generator:
        """Options a runtime may take, ignoring those it has no use for: ``context_length`` (tokens
        per generation), ``threads``, ``parallel`` (generations to decode at once)."""
        raise HanzoError(f"runtime {self.name!r} cannot generate text")

    def version(self) -> str | None:
        """The version of the library behind the runtime (kept with benchmark results), if known."""
        return None

    @abstractmethod
    def available(self) -> bool:
        """Whether the runtime's library imports (checked without loading any model)."""


def choose_runtime(
    runtimes: Sequence[Runtime],
    architecture: str | None,
    task: str,
    forced: str | None = None,
    format: str = "gguf",
) -> Runtime:
    """The runtime to use for a ``format`` model of ``architecture`` and ``task``, or a clear error."""
    kind = "" if format == "gguf" else f"{format} "
    if forced:
        by_name = {r.name: r for r in runtimes}
        if forced not in by_name:
            hint = missing_plugin_hint("runtime", forced)
            known = ", ".join(by_name) or "none installed"
            raise HanzoError(f"unknown runtime {forced!r} (installed: {known}){hint}")
        runtime = by_name[forced]
        if not runtime.supports(architecture, task, format):
            able = [r.name for r in runtimes if r.supports(architecture, task, format)]
            raise HanzoError(
                f"runtime {forced!r} cannot {task} a {kind}{architecture or 'unknown'}-architecture model "
                f"({describe(runtime)})" + (f"; runtimes that can: {', '.join(able)}" if able else "")
            )
        return runtime
    for runtime in runtimes:
        if runtime.supports(architecture, task, format):
            return runtime
    if not runtimes:
        suggested = "mistralrs" if format == "safetensors" else "llamacpp"
        raise MissingPluginError(f"no runtime is installed{missing_plugin_hint('runtime', suggested)}")
    listing = "; ".join(f"{r.name}: {describe(r)}" for r in runtimes)
    # mistral.rs runs safetensors embedding folders; say how to get it when it is not installed
    hint = missing_plugin_hint("runtime", "mistralrs") if format == "safetensors" else ""
    if hint and any(r.name == "mistralrs" for r in runtimes):
        hint = ""
    raise HanzoError(
        f"no installed runtime can {task} a {kind}model of architecture {architecture or 'unknown'!r} "
        f"({listing}){hint}"
    )


def describe(runtime: Runtime) -> str:
    return runtime.summary()
