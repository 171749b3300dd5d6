"""Embedding and reranking on llama.cpp's C API (through llama-cpp-python's ctypes bindings).

Why not ``llama_cpp.Llama``: its batch size is fixed when the model loads, and ``Llama.embed``
truncates every text to that size (dropping the final [SEP]/EOS), while short texts are best embedded
in small batches (64 tokens, see :data:`DEFAULT_BATCH_TOKENS`). Here the model loads once and a context is
(re)created only when a longer text needs a bigger one, so short texts stay fast and long ones are
embedded whole, up to the model's context.

Invariants that keep llama.cpp from aborting the process (a GGML_ASSERT is not a Python error):
every context has ``n_ctx == n_batch == n_ubatch``, and no batch holds more tokens than that or more
sequences than ``n_seq_max``.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from hanzo_cli.api import HanzoError


def _bindings() -> ModuleType:
    """llama-cpp-python's ctypes bindings (``llama_cpp.llama_cpp``), without its high-level API.

    ``import llama_cpp`` runs the package's ``__init__``, which also imports ``Llama`` and its chat
    formats (jinja2 and more): ~50 ms of every ``hanzo embedding:test`` that the C API does not
    need. The bindings are loaded under a bare package that is then forgotten, so a later
    ``import llama_cpp`` (anyone's) runs the real ``__init__``, which reuses the loaded bindings.
    """
    if "llama_cpp" in sys.modules:
        return importlib.import_module("llama_cpp.llama_cpp")
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None:
        raise HanzoError("llama-cpp-python is not installed: pip install 'hanzo-cli[llamacpp]'")
    package = importlib.util.module_from_spec(spec)
    sys.modules["llama_cpp"] = package
    try:
        return importlib.import_module("llama_cpp.llama_cpp")
    finally:
        if sys.modules.get("llama_cpp") is package:
            del sys.modules["llama_cpp"]


if TYPE_CHECKING:
    import llama_cpp.llama_cpp as lc
else:
    lc = _bindings()

#: Tokens per batch for short texts. Not more: from 128 tokens up, llama.cpp takes another F16
#: matrix path whose results depend on the batch (MiniLM: a text's vector moves by up to 1.2e-4 with
#: its batch-mates; at 64, by 3e-8), and the node batches concurrent requests together. Larger batches
#: are faster (MiniLM on one core: 466 texts/s at 256 against 376 at 64), a trade kept for later.
DEFAULT_BATCH_TOKENS = 64
#: Longest input kept (the rest is cut off), unless the model's own context is shorter. Attention
#: buffers grow with the square of this, so a 32K-context model is not run at 32K by default.
DEFAULT_MAX_TOKENS = 8192

#: The poolings hanzo uses; "none" (one vector per token) is never wanted here.
POOLING = {
    "mean": lc.LLAMA_POOLING_TYPE_MEAN,
    "cls": lc.LLAMA_POOLING_TYPE_CLS,
    "last": lc.LLAMA_POOLING_TYPE_LAST,
    "rank": lc.LLAMA_POOLING_TYPE_RANK,
}

_GGML_LOG_LEVEL_ERROR = 4  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_GGML_LOG_LEVEL_CONT = 5
_LOG_SOURCE = re.compile(r"^\w+: ")  # "llama_model_load: " and the like

# llama.cpp logs through one process-wide callback. hanzo keeps its chatter off the terminal and
# remembers the last error lines, which become the message of the HanzoError raised on failure.
_errors: deque[str] = deque(maxlen=6)
_last_level = 0
_debug = os.environ.get("HANZO_DEBUG", "") not in ("", "0")
_init_lock = threading.Lock()
_initialised = False


@lc.llama_log_callback  # type: ignore[untyped-decorator]
def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level
    if level != _GGML_LOG_LEVEL_CONT:
        _last_level = level
    message = text.decode("utf-8", errors="replace")
    if _last_level == _GGML_LOG_LEVEL_ERROR and message.strip():
        _errors.append(_LOG_SOURCE.sub("", message.strip()))
    if _debug:
        sys.stderr.write(message)


def _init() -> None:
    global _initialised
    with _init_lock:
        # every time: importing llama_cpp's high-level API later (anyone may) installs its own logger
        lc.llama_log_set(_on_log, ctypes.c_void_p(0))
        if not _initialised:
            lc.llama_backend_init()
            _initialised = True


def failure(what: str) -> HanzoError:
    detail = "; ".join(_errors)
    _errors.clear()
    return HanzoError(f"{what}: {detail}" if detail else what)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class LlamaModel:
    """A GGUF loaded with llama.cpp (weights only; contexts are made by :class:`Encoder`)."""

    def __init__(self, path: Path) -> None:
        _init()
        _errors.clear()
        params = lc.llama_model_default_params()
        model = lc.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise failure(f"llama.cpp cannot load {path}")
        self.path = path
        self.ptr = model
        self.vocab = lc.llama_model_get_vocab(model)
        self.n_embd: int = lc.llama_model_n_embd(model)
        self.n_ctx_train: int = lc.llama_model_n_ctx_train(model)
        self.n_cls_out: int = lc.llama_model_n_cls_out(model)
        # llama.cpp appends EOS/SEP itself (add_special); truncation must keep that last token.
        self.adds_end_token = bool(
            lc.llama_vocab_get_add_eos(self.vocab) or lc.llama_vocab_get_add_sep(self.vocab)
        )

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8  # at most one token per byte, plus the special tokens
        while True:
            buf = (lc.llama_token * size)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, size, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def chat_template(self, name: str) -> str | None:
        template = lc.llama_model_chat_template(self.ptr, name.encode())
        return template.decode("utf-8") if template else None

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None


class Encoder:
    """Runs token sequences through a model and returns one pooled output per sequence.

    ``pooling`` is one of :data:`POOLING`; with ``rank`` the output is the classifier's
    ``n_cls_out`` values (relevance first), otherwise an ``n_embd`` vector.
    """

    def __init__(
        self,
        model: LlamaModel,
        pooling: str,
        *,
        threads: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if pooling not in POOLING:
            raise HanzoError(f"unsupported pooling {pooling!r} (use mean, cls, last or rank)")
        self.model = model
        self.pooling = pooling
        self.threads = threads or default_threads()
        self.batch_tokens = batch_tokens
        # Inputs longer than this are cut; the model cannot attend further than its training context.
        self.max_tokens = min(max_tokens, model.n_ctx_train) if model.n_ctx_train > 0 else max_tokens
        self.n_out = max(model.n_cls_out, 1) if pooling == "rank" else model.n_embd
        self._ctx: ctypes.c_void_p | None = None
        self._batch: lc.llama_batch | None = None
        self._size = 0
        self._n_seq_max = 0

    def fit(self, tokens: list[int], keep_tail: int) -> list[int]:
        """``tokens`` cut to :attr:`max_tokens`, keeping the last ``keep_tail`` (EOS, a prompt suffix)."""
        if len(tokens) <= self.max_tokens:
            return tokens
        keep_tail = min(keep_tail, self.max_tokens // 2)
        head = self.max_tokens - keep_tail
        return tokens[:head] + tokens[len(tokens) - keep_tail :]

    def run(self, sequences: Sequence[list[int]]) -> np.ndarray:
        """A ``(len(sequences), n_out)`` float32 array; sequences must already be fitted."""
        out = np.empty((len(sequences), self.n_out), dtype=np.float32)
        if not sequences:
            return out
        if any(not seq for seq in sequences):
            raise HanzoError("cannot embed an empty text (it has no tokens)")
        budget = max(self.batch_tokens, max(len(seq) for seq in sequences))
        self._ensure_context(budget)
        start = 0
        while start < len(sequences):
            end, used = start, 0
            while (
                end < len(sequences)
                and used + len(sequences[end]) <= budget
                and end - start < self._n_seq_max
            ):
                used += len(sequences[end])
                end += 1
            self._decode(sequences[start:end], out[start:end])
            start = end
        return out

    def _ensure_context(self, tokens: int) -> None:
        if self._ctx is not None and tokens <= self._size:
            return
        self._free_context()
        size = -(-tokens // 64) * 64  # round up: fewer re-creations as inputs grow
        params = lc.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = size
        params.n_seq_max = min(size, lc.llama_max_parallel_sequences())
        params.kv_unified = True  # sequences share the cache, so any mix of lengths fits
        params.embeddings = True
        params.pooling_type = POOLING[self.pooling]
        params.n_threads = params.n_threads_batch = self.threads
        _errors.clear()
        ctx = lc.llama_init_from_model(self.model.ptr, params)
        if not ctx:
            raise failure(f"llama.cpp cannot create a {size}-token context for {self.model.path}")
        self._ctx, self._size, self._n_seq_max = ctx, size, params.n_seq_max
        self._batch = lc.llama_batch_init(size, 0, 1)

    def _decode(self, sequences: Sequence[list[int]], out: np.ndarray) -> None:
        batch = self._batch
        assert batch is not None and self._ctx is not None
        j = 0
        for seq_id, tokens in enumerate(sequences):
            for pos, token in enumerate(tokens):
                batch.token[j] = token
                batch.pos[j] = pos  # type: ignore[call-overload]  # llama-cpp-python mistypes it
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq_id
                batch.logits[j] = True  # embeddings need every token as an output
                j += 1
        batch.n_tokens = j
        memory = lc.llama_get_memory(self._ctx)
        if memory:  # encoder-only models (BERT) have no KV cache
            lc.llama_memory_clear(memory, True)
        _errors.clear()
        rc = lc.llama_decode(self._ctx, batch)
        if rc != 0:
            raise failure(f"llama.cpp failed to process a batch of {j} tokens (code {rc})")
        for seq_id in range(len(sequences)):
            ptr = lc.llama_get_embeddings_seq(self._ctx, seq_id)
            if not ptr:
                raise failure("llama.cpp returned no pooled output")
            out[seq_id] = np.ctypeslib.as_array(ptr, shape=(self.n_out,))

    def _free_context(self) -> None:
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None

    def close(self) -> None:
        self._free_context()


class LlamaEmbedder:
    """:class:`hanzo_cli.runtimes.Embedder` on llama.cpp: one pooled vector per text."""

    def __init__(self, path: Path, pooling: str, **options: int) -> None:
        self._model = LlamaModel(path)
        try:
            self._encoder = Encoder(self._model, pooling, **options)
        except BaseException:
            self._model.close()
            raise
        self.dimensions = self._model.n_embd

    @property
    def max_tokens(self) -> int:
        """The longest input embedded whole; longer ones are truncated."""
        return self._encoder.max_tokens

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is, before any truncation."""
        return len(self._model.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        """The tokens the model sees for ``text`` (after truncation)."""
        return self._encoder.fit(self._model.tokenize(text), int(self._model.adds_end_token))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._encoder.run([self.tokenize(text) for text in texts])
        return vectors.tolist()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._encoder.close()
        self._model.close()


class LlamaReranker:
    """:class:`hanzo_cli.runtimes.Reranker` on llama.cpp's ``rank`` pooling.

    Prompts are built like llama-server does: the GGUF's ``rerank`` chat template with ``{query}``
    and ``{document}`` filled in (Qwen3-Reranker), else ``[BOS]query[EOS][SEP]document[EOS]``
    (BERT-style cross-encoders). The score is the classifier's first output, e.g. P("yes") for
    Qwen3-Reranker, whose head llama.cpp soft-maxes over yes/no.
    """

    def __init__(self, path: Path, **options: int) -> None:
        self._model = LlamaModel(path)
        try:
            self._encoder = Encoder(self._model, "rank", **options)
        except BaseException:
            self._model.close()
            raise
        self._template = self._model.chat_template("rerank")
        if self._template is not None:
            suffix = self._template.rsplit("{document}", 1)[-1]
            self._keep_tail = len(self._model.tokenize(suffix, add_special=False, parse_special=True))
        else:
            self._keep_tail = int(self._model.adds_end_token)

    def prompt_tokens(self, query: str, document: str) -> list[int]:
        model = self._model
        if self._template is not None:
            # One pass over the template: a query that contains "{document}" stays as typed.
            values = {"{query}": query, "{document}": document}
            prompt = re.sub(r"\{query\}|\{document\}", lambda m: values[m.group(0)], self._template)
            # One string with special tokens parsed, as llama-server and Qwen's reference code do;
            # tokenizing the pieces apart would change the tokens where text meets template.
            tokens = model.tokenize(prompt, add_special=False, parse_special=True)
        else:
            vocab = model.vocab
            eos = lc.llama_vocab_eos(vocab)
            if eos == lc.LLAMA_TOKEN_NULL:
                eos = lc.llama_vocab_sep(vocab)
            tokens = [lc.llama_vocab_bos(vocab)] if lc.llama_vocab_get_add_bos(vocab) else []
            tokens += model.tokenize(query, add_special=False)
            if lc.llama_vocab_get_add_eos(vocab):
                tokens.append(eos)
            if lc.llama_vocab_get_add_sep(vocab):
                tokens.append(lc.llama_vocab_sep(vocab))
            tokens += model.tokenize(document, add_special=False)
            if lc.llama_vocab_get_add_eos(vocab):
                tokens.append(eos)
        return self._encoder.fit(tokens, self._keep_tail)

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        scores = self._encoder.run([self.prompt_tokens(query, doc) for doc in documents])
        return [float(s) for s in scores[:, 0]]

    def close(self) -> None:
        self._encoder.close()
        self._model.close()
