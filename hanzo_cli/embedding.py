"""Embedding and reranking models, loaded in-process: from a reference to vectors and scores.

:func:`load_embedding_model` resolves a reference (or the configured default), pulls the model if
needed, reads its GGUF header (or, for a safetensors model folder, its config.json and
sentence-transformers configs), picks a runtime for its format and architecture and loads it. The
returned :class:`EmbeddingModel` applies the model's rules on top of the runtime's raw vectors:

- pooling: what the GGUF (or a folder's ``1_Pooling/config.json``) declares; when a GGUF declares
  none, the last token for causal models (what LLM-based embedders use) and the mean for
  bidirectional ones;
- query instructions: where the catalog says the model (or its family) takes one (Qwen3-Embedding:
  ``Instruct: {task}\\nQuery:{text}``), queries get it and documents go in as they are;
- every vector is L2-normalised; ``dimensions`` cuts it and normalises again (Matryoshka, like
  Ollama's ``/api/embed``).

Runtimes are tried in order (``Runtime.priority``, then name); ``runtime=NAME`` forces one and the
``runtime.default`` setting prefers one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hanzo_cli import models
from hanzo_cli.config import env_name, get_setting
from hanzo_cli.errors import (
    HanzoError,
    MissingPluginError,
    ModelFileError,
    NotFoundError,
    RuntimeFailure,
)
from hanzo_cli.extras import missing_plugin_hint
from hanzo_cli.gguf_info import GGUFInfo, has_gguf_magic, read_gguf_info
from hanzo_cli.plugins import registry
from hanzo_cli.providers import ModelInfo, PullOptions
from hanzo_cli.runtimes import Embedder, Reranker, Runtime, choose_runtime
from hanzo_cli.safetensors_info import SafetensorsInfo, model_format, read_safetensors_info

if TYPE_CHECKING:
    import numpy as np

    from hanzo_cli.catalog import CatalogEntry

T = TypeVar("T")


@dataclass
class EmbeddingModel:
    """A loaded embedding model and the rules for using it (thread-safe: calls are serialised)."""

    info: ModelInfo
    #: The GGUF's facts, or None for a safetensors model folder (then see :attr:`folder`).
    gguf: GGUFInfo | None
    runtime: Runtime
    #: Native vector size.
    dimensions: int
    embedder: Embedder = field(repr=False)
    #: Pooling the runtime was asked for: mean, cls or last.
    pooling: str = "mean"
    #: ``str.format`` pattern with ``{task}`` and ``{text}`` for queries, or None (no instructions).
    query_format: str | None = None
    #: The ``{task}`` used when a query gives no instruction of its own.
    query_task: str = ""
    #: The folder's facts when the model is a safetensors folder.
    folder: SafetensorsInfo | None = None
    #: Names this model if its runtime aborts the process (see :class:`NativeCall`).
    native: NativeCall | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return f"{self.info.provider}:{self.info.name}"

    @property
    def facts(self) -> list[str]:
        """Architecture and weight type, for display: ``["qwen3", "Q8_0"]``, ``["qwen3", "BF16"]``."""
        if self.folder is not None:
            return [f for f in (self.folder.architecture, self.folder.dtype, "safetensors") if f]
        assert self.gguf is not None
        return [f for f in (self.gguf.architecture, self.gguf.file_type) if f]

    def embed(
        self,
        texts: Sequence[str],
        *,
        query: bool = False,
        instruction: str | None = None,
        dimensions: int | None = None,
    ) -> list[list[float]]:
        """One L2-normalised vector per text. ``query`` (or an ``instruction``) marks the texts as
        search queries; ``dimensions`` keeps the first N values, normalised again."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        vectors = self.embed_array(texts, query=query, instruction=instruction, dimensions=dimensions)
        return vectors.tolist()  # type: ignore[no-any-return]

    def embed_array(
        self,
        texts: Sequence[str],
        *,
        query: bool = False,
        instruction: str | None = None,
        dimensions: int | None = None,
    ) -> np.ndarray:
        """:meth:`embed` as a C-contiguous float32 array, one row per text (``(0, size)`` for no
        texts): the node hands these on without making Python floats of them."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed_array() takes a sequence of texts, not one string")
        size = self._check_dimensions(dimensions)
        texts = [self.prepare(t, query=query, instruction=instruction) for t in texts]
        if not texts:
            return np.empty((0, size), dtype=np.float32)
        with self._lock:
            raw = NativeCall.run(self.native, lambda: self.embedder.embed(texts))
        return np.ascontiguousarray(normalize(np.asarray(raw, dtype=np.float32)[:, :size]), dtype=np.float32)

    def prepare(self, text: str, *, query: bool = False, instruction: str | None = None) -> str:
        """The text as the model should see it: with the query instruction where the model uses one."""
        if self.query_format is None or not (query or instruction):
            return text
        return self.query_format.format(task=instruction or self.query_task, text=text)

    def _check_dimensions(self, dimensions: int | None) -> int:
        if dimensions is None:
            return self.dimensions
        if not 1 <= dimensions <= self.dimensions:
            raise HanzoError(
                f"dimensions must be between 1 and {self.dimensions} (the native size of {self.name}), "
                f"not {dimensions}"
            )
        return dimensions

    def close(self) -> None:
        with self._lock:
            self.embedder.close()


@dataclass
class RerankModel:
    """A loaded reranker: ``rerank(query, documents)`` gives one relevance score per document."""

    info: ModelInfo
    gguf: GGUFInfo | None
    runtime: Runtime
    reranker: Reranker = field(repr=False)
    #: Names this model if its runtime aborts the process (see :class:`NativeCall`).
    native: NativeCall | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return f"{self.info.provider}:{self.info.name}"

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if isinstance(documents, str):
            raise TypeError("rerank() takes a sequence of documents, not one string")
        if not documents:
            return []
        with self._lock:
            return NativeCall.run(self.native, lambda: self.reranker.rerank(query, list(documents)))

    def close(self) -> None:
        with self._lock:
            self.reranker.close()


def load_embedding_model(
    ref: str | None = None,
    *,
    provider: str | None = None,
    runtime: str | None = None,
    pull: bool = True,
    pull_options: PullOptions | None = None,
    runtime_options: Mapping[str, Any] | None = None,
) -> EmbeddingModel:
    """Load ``ref`` (default: the ``embedding.model`` setting, else the catalog's lightweight
    embedding model) for embedding, pulling it first (with ``pull_options``) when it is missing
    and ``pull`` is true. ``runtime_options`` go to the runtime's loader (llamacpp: ``threads``,
    ``batch_tokens``, ``max_tokens``)."""
    ref = ref or default_model_ref("embedding.model", "embed", "lightweight")
    info, gguf, folder = _resolve(ref, provider, pull, pull_options)
    if folder is not None:
        chosen = select_runtime(folder.architecture, "embed", runtime, "safetensors")
        pooling = folder.pooling or "mean"
        rules = query_rules(info, [info.path.name if info.path else None])
    else:
        assert gguf is not None
        chosen = select_runtime(gguf.architecture, "embed", runtime)
        if gguf.pooling_type == "rank":
            raise HanzoError(f"{info.provider}:{info.name} is a reranker (rank pooling); use: hanzo rerank")
        pooling = model_pooling(gguf)
        rules = query_rules(info, [gguf.metadata.get("general.basename"), gguf.name])
    options = {**(runtime_options or {}), "pooling": pooling}
    native = NativeCall(info, chosen)
    embedder = _load(lambda: chosen.load_embedder(_path(info), **options), info, chosen, native)
    return EmbeddingModel(
        native=native,
        info=info,
        gguf=gguf,
        runtime=chosen,
        dimensions=embedder.dimensions,
        embedder=embedder,
        pooling=pooling,
        query_format=rules.query_format if rules else None,
        query_task=(rules.query_task or "") if rules else "",
        folder=folder,
    )


def load_reranker(
    ref: str | None = None,
    *,
    provider: str | None = None,
    runtime: str | None = None,
    pull: bool = True,
    pull_options: PullOptions | None = None,
    runtime_options: Mapping[str, Any] | None = None,
) -> RerankModel:
    """Load ``ref`` (default: the ``reranker.model`` setting, else the catalog's lightweight
    reranker) for reranking, like :func:`load_embedding_model`; the GGUF must declare llama.cpp's
    ``rank`` pooling."""
    ref = ref or default_model_ref("reranker.model", "rerank", "lightweight")
    info, gguf, folder = _resolve(ref, provider, pull, pull_options)
    if folder is not None:
        chosen = select_runtime(folder.architecture, "rerank", runtime, "safetensors")
    else:
        assert gguf is not None
        chosen = select_runtime(gguf.architecture, "rerank", runtime)
    if gguf is not None and gguf.pooling_type != "rank":
        raise HanzoError(
            f"{info.provider}:{info.name} is not a reranker: its GGUF declares "
            f"{gguf.pooling_type or 'no'} pooling, not rank (llama.cpp's converter gives rerankers such "
            "as Qwen3-Reranker rank pooling and a classifier head)"
        )
    native = NativeCall(info, chosen)
    reranker = _load(
        lambda: chosen.load_reranker(_path(info), **(runtime_options or {})), info, chosen, native
    )
    return RerankModel(info=info, gguf=gguf, runtime=chosen, reranker=reranker, native=native)


def query_rules(info: ModelInfo, labels: Sequence[object]) -> CatalogEntry | None:
    """The catalog entry whose query instruction applies to this model, if any; ``labels`` are the
    model's own names (a GGUF's ``general.basename`` and ``general.name``; a folder's name)."""
    return registry().catalog.rules_for(info.provider, info.name, [str(x) for x in labels if x])


def model_pooling(gguf: GGUFInfo) -> str:
    """The pooling to embed with: the GGUF's own, else last token (causal) or mean (bidirectional)."""
    if gguf.pooling_type in ("mean", "cls", "last"):
        return gguf.pooling_type
    causal = gguf.metadata.get(f"{gguf.architecture}.attention.causal", True)
    return "last" if causal else "mean"


def select_runtime(
    architecture: str | None, task: str, forced: str | None = None, format: str = "gguf"
) -> Runtime:
    """The runtime for a ``format`` model: ``forced`` if given, else the preferred (setting
    ``runtime.default``) or first installed one that supports it and whose library imports."""
    runtimes = registry().runtimes
    if forced:
        chosen = choose_runtime(runtimes, architecture, task, forced, format)
    else:
        preferred = get_setting("runtime.default")
        # stable sort: runtimes whose library imports first, then the preferred one, else priority order
        ordered = sorted(runtimes, key=lambda r: (not r.available(), r.name != preferred))
        chosen = choose_runtime(ordered, architecture, task, format=format)
    if not chosen.available():
        raise MissingPluginError(
            f"runtime {chosen.name!r} is installed but its library is not"
            f"{missing_plugin_hint('runtime', chosen.name)}"
        )
    return chosen


def cosine_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Pairwise cosine similarities (vectors need not be normalised)."""
    import numpy as np

    if not vectors:
        return []
    unit = normalize(np.asarray(vectors, dtype=np.float64))
    return (unit @ unit.T).clip(-1.0, 1.0).tolist()  # type: ignore[no-any-return]


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def default_model_ref(setting: str, task: str, tier: str) -> str:
    """The configured model for ``setting`` (env first), else the catalog's alias for ``tier``."""
    configured = get_setting(setting)
    if configured:
        return configured
    entries = registry().catalog.tier(task, tier)
    if not entries:
        raise HanzoError(
            f"no {task} model given and none configured: pass --model REF or run "
            f"hanzo config:set {setting} REF (or set {env_name(setting)})"
        )
    return entries[0].alias


def _resolve(
    ref: str, provider: str | None, pull: bool, pull_options: PullOptions | None
) -> tuple[ModelInfo, GGUFInfo | None, SafetensorsInfo | None]:
    """The local model and its facts: a GGUF's, or a safetensors folder's (complete, or an error
    naming the files it lacks)."""
    if pull:
        info = models.ensure(ref, provider, pull_options)
    else:
        found = models.find(ref, provider)
        if found is None:
            raise NotFoundError(f"model {ref!r} is not pulled (pull it with: hanzo model:pull {ref})")
        info = found
    path = _path(info)
    kind = model_format(path)
    if kind == "gguf":
        return info, read_gguf_info(path), None
    if kind == "safetensors":
        folder = read_safetensors_info(path)
        if folder.missing:
            raise ModelFileError(
                f"{info.provider}:{info.name} is incomplete: {path} lacks {', '.join(folder.missing)} "
                f"(pull it again: hanzo model:pull {info.provider}:{info.name})"
            )
        return info, None, folder
    raise HanzoError(
        f"{info.provider}:{info.name} is neither a GGUF file nor a model folder with config.json "
        f"({path}); runtimes load GGUF files and safetensors folders"
    )


class NativeCall:
    """Runs calls into a native runtime so that, if the runtime aborts the process (a C++ exception
    nothing catches, an assertion), the fatal-error report faulthandler prints names the model.

    The call runs in a frame whose file name is that sentence, so the report's stack reads
    ``File "<runtime 'llamacpp' crashed the process while running local:m (/path)>"``: nothing is
    printed unless the process dies, and the cost of a call is one ``eval`` of a compiled code object.
    """

    def __init__(self, info: ModelInfo, runtime: Runtime) -> None:
        import faulthandler

        if not faulthandler.is_enabled():
            faulthandler.enable()
        label = f"<runtime {runtime.name!r} crashed the process while running {info.provider}:{info.name}"
        label += f" ({info.path})>" if info.path else ">"
        self.code = compile("call()", label, "eval")

    @staticmethod
    def run(native: NativeCall | None, call: Callable[[], T]) -> T:
        if native is None:
            return call()
        result: T = eval(native.code, {"call": call})  # our own constant code object
        return result


def _path(info: ModelInfo) -> Path:
    if info.path is None or not (info.path.is_file() or info.path.is_dir()):
        raise HanzoError(f"{info.provider}:{info.name} has no local model file to load")
    return info.path


def _load(load: Callable[[], T], info: ModelInfo, runtime: Runtime, native: NativeCall) -> T:
    """Call a runtime's loader, turning library exceptions into one-line errors. A GGUF gets the
    header preflight first (:mod:`hanzo_cli.gguf_check`): what would abort the runtime natively is
    refused here with one line naming the model and the file."""
    path = _path(info)
    if path.is_file() and has_gguf_magic(path):
        from hanzo_cli.gguf_check import check_gguf

        check_gguf(path, f"{info.provider}:{info.name} ({path})")
    try:
        return native.run(native, load)
    except HanzoError:
        raise
    except Exception as exc:  # runtimes wrap C libraries that raise anything
        detail = str(exc) or type(exc).__name__
        raise RuntimeFailure(
            f"runtime {runtime.name!r} failed to load {info.provider}:{info.name}: {detail}"
        ) from exc
