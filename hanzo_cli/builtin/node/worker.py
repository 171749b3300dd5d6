"""A model's worker process: ``python -m hanzo_cli.builtin.node.worker REF ROLE [RUNTIME [PARALLEL]]``.

The node runs each loaded model in a worker of its own (as Ollama runs its runners), so a model that
crashes the runtime (a native abort, an out-of-memory kill) takes down only its worker: the node
fails the requests that worker held and starts a new one on the next request.

Protocol, over the worker's stdin and stdout: frames of a 4-byte big-endian length and a pickle.
The worker first answers ``{"id": 0, "ready": facts}`` (or ``{"id": 0, "error": message}`` and
exits); then, in order, each request ``{"id", "op", **arguments}`` gets ``{"id", "ok": value}`` or
``{"id", "error", "status"}``, and a ``generate`` gets ``{"id", "chunk": (text, finish, prompt,
completion)}`` frames until the one with a finish reason. ``{"op": "cancel", "target": id}`` stops a
generation at its next token (or drops it if it has not started). Anything the libraries print goes
to stderr, which is the node's log.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import numpy as np

HEADER = struct.Struct(">I")


def write_frame(out: BinaryIO, value: Any, lock: threading.Lock | None = None) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if lock is None:
        out.write(HEADER.pack(len(data)) + data)
        out.flush()
        return
    with lock:
        out.write(HEADER.pack(len(data)) + data)
        out.flush()


def read_frame(source: BinaryIO) -> Any:
    """The next frame, or None at the end of the stream."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = source.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


class Worker:
    """The model and the requests for it, one at a time."""

    def __init__(self, ref: str, role: str, runtime: str | None, out: BinaryIO, parallel: int = 1) -> None:
        self.ref, self.role, self.runtime, self.out = ref, role, runtime, out
        self.parallel = parallel  # generations decoded at once (the runtime's own limit may be lower)
        self.lock = threading.Lock()
        self.cancelled: set[int] = set()
        self.model: Any = None

    def send(self, value: dict[str, Any]) -> None:
        write_frame(self.out, value, self.lock)

    def load(self) -> dict[str, Any]:
        from hanzo_cli.api import has_gguf_magic, read_gguf_info
        from hanzo_cli.builtin.generation import load_generation_model
        from hanzo_cli.embedding import EmbeddingModel, load_embedding_model, load_reranker

        if self.role == "generate":
            options = {"parallel": self.parallel}
            model = load_generation_model(self.ref, runtime=self.runtime, pull=False, runtime_options=options)
            self.model = model
            template = getattr(model.generator, "chat_template", None)
            return {"kind": "generator", "runtime": model.runtime.name, "chat_template": bool(template)}
        from hanzo_cli import models

        found = models.find(self.ref)
        path = found.path if found else None
        if path is not None and has_gguf_magic(path) and read_gguf_info(path).pooling_type == "rank":
            self.model = load_reranker(self.ref, runtime=self.runtime, pull=False)
            return {"kind": "reranker", "runtime": self.model.runtime.name}
        self.model = load_embedding_model(self.ref, runtime=self.runtime, pull=False)
        assert isinstance(self.model, EmbeddingModel)
        return {"kind": "embedding", "runtime": self.model.runtime.name, "dimensions": self.model.dimensions}

    def handle(self, request: dict[str, Any]) -> None:
        """Answer one request. Generations run in threads of their own when the generator decodes
        several at once (its ``parallel``), so they overlap; everything else runs here, in order."""
        if request["op"] == "generate" and getattr(self.model.generator, "parallel", 1) > 1:
            threading.Thread(target=self._answer, args=(request,), daemon=True).start()
        else:
            self._answer(request)

    def _answer(self, request: dict[str, Any]) -> None:
        ident = request["id"]
        if ident in self.cancelled:
            self.cancelled.discard(ident)
            return
        try:
            if request["op"] == "generate":
                self._generate(ident, request["prompt"], request["options"])
                return
            value = getattr(self, "op_" + request["op"])(**request["args"])
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the request, in one line
            status = int(getattr(exc, "status", 0) or (400 if _is_hanzo_error(exc) else 500))
            self.send({"id": ident, "error": getattr(exc, "message", None) or str(exc), "status": status})
            return
        self.send({"id": ident, "ok": value})

    def _generate(self, ident: int, prompt: str, options: Any) -> None:
        chunks = self.model.generator.generate(prompt, options)
        try:
            for chunk in chunks:
                self.send({"id": ident, "chunk": chunk})
                if chunk.finish_reason is not None:
                    return
                if ident in self.cancelled:
                    self.cancelled.discard(ident)
                    print(
                        f"stopped generating with {self.ref}: the request ended (client gone)",
                        file=sys.stderr,
                    )
                    self.send({"id": ident, "cancelled": True})
                    return
        finally:
            close = getattr(chunks, "close", None)
            if callable(close):
                close()  # stops the generation now, not when the iterator is collected

    # -- operations ----------------------------------------------------------------------------------

    def op_embed(
        self, texts: list[str], dimensions: int | None, normalize: bool, truncate: bool
    ) -> tuple[np.ndarray, list[int] | None]:
        """The vectors as one float32 array (pickled as its bytes, not as Python floats) and each
        text's token count."""
        import numpy as np

        model = self.model
        prepared = [model.prepare(text) for text in texts]
        embedder: Any = model.embedder
        if not truncate:
            _check_lengths(embedder, prepared)
        if normalize:
            size = dimensions if dimensions is not None and dimensions < model.dimensions else None
            vectors = model.embed_array(texts, dimensions=size)
        else:
            vectors = np.ascontiguousarray(embedder.embed(prepared), dtype=np.float32)
        tokenize = getattr(embedder, "tokenize", None)  # for the APIs' usage fields, where it exists
        counts = [len(tokenize(text)) for text in prepared] if callable(tokenize) else None
        return vectors, counts

    def op_rerank(self, query: str, documents: list[str]) -> list[float]:
        scores: list[float] = self.model.rerank(query, documents)
        return scores

    def op_chat_prompt(self, messages: list[dict[str, str]], template: str | None) -> str:
        prompt: str = self.model.generator.chat_prompt(messages, template)
        return prompt


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_hanzo_error(exc: BaseException) -> bool:
    from hanzo_cli.api import HanzoError

    return isinstance(exc, HanzoError)


def _check_lengths(embedder: Any, texts: list[str]) -> None:
    """400 when a text is longer than the model takes (runtimes that can tell: ``count_tokens`` and
    ``max_tokens``); otherwise the runtime truncates, as with ``truncate: true``."""
    count = getattr(embedder, "count_tokens", None)
    limit = getattr(embedder, "max_tokens", None)
    if not callable(count) or not isinstance(limit, int):
        return
    for index, text in enumerate(texts):
        tokens = count(text)
        if tokens > limit:
            raise RequestError(
                400,
                f"input {index} is {tokens} tokens, more than the model's context of {limit} tokens "
                "(send truncate: true to cut it)",
            )


def main(argv: list[str]) -> int:
    ref, role = argv[0], argv[1]
    runtime = argv[2] if len(argv) > 2 and argv[2] else None
    parallel = int(argv[3]) if len(argv) > 3 else 1
    # Frames go to a private copy of stdout; whatever else writes to fd 1 lands in the log (stderr).
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    worker = Worker(ref, role, runtime, out, parallel)
    try:
        facts = worker.load()
    except Exception as exc:  # noqa: BLE001 - the node reports it as the model's load error
        worker.send({"id": 0, "error": getattr(exc, "message", None) or str(exc) or type(exc).__name__})
        return 1
    worker.send({"id": 0, "ready": facts})
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:  # cancels take effect while a generation runs
        while (frame := read_frame(source)) is not None:
            if frame.get("op") == "cancel":
                worker.cancelled.add(frame["target"])
            else:
                requests.put(frame)
        requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    while (request := requests.get()) is not None:
        worker.handle(request)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
