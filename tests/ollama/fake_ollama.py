"""A loopback server that speaks the Ollama HTTP API as docs/api.md documents it (no Ollama binary
is available here). It keeps a small "registry" of pullable models and the models it has pulled.

What it follows from the documentation:

- ``GET /`` → "Ollama is running"; ``GET /api/version`` → ``{"version": …}``.
- ``POST /api/pull`` ``{model, insecure, stream}`` → a chunked ``application/x-ndjson`` stream:
  ``pulling manifest``, then ``pulling <12 hex>`` lines with ``digest``, ``total`` and
  ``completed`` per layer, ``verifying sha256 digest``, ``writing manifest``, ``success``.
  Failures are an ``{"error": …}`` line inside the 200 stream (an unknown model gives
  ``pull model manifest: file does not exist``, as Ollama does).
- ``GET /api/tags`` → ``{"models": [{name, model, modified_at, size, digest (bare hex), details}]}``.
- ``POST /api/show`` ``{model}`` → ``modelfile`` (with a ``FROM <blob path>`` line), ``details``,
  ``model_info``, ``capabilities``; 404 ``{"error": "model 'x' not found"}``.
- ``DELETE /api/delete`` ``{model}`` → 200, or 404 ``{"error": "model 'x' not found"}``.
- ``POST /api/embed`` ``{model, input: str | [str], truncate, dimensions}`` → ``{model,
  embeddings, total_duration, load_duration, prompt_eval_count}``, L2-normalised vectors (cut to
  ``dimensions`` and normalised again); 404 for a model that is not pulled.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "0.12.6"
MODIFIED_AT = "2026-11-20T10:11:12.123456789+01:00"  # Go's RFC 3339 with nanoseconds


def canonical(name: str) -> str:
    """How Ollama compares names: defaults filled in, case folded."""
    name = name.strip().lower()
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name


@dataclass
class FakeModel:
    """A model the server can pull: its layers' bytes (the first one is the model file)."""

    name: str
    layers: list[bytes]
    family: str = "qwen3"
    dims: int = 8
    capabilities: list[str] = field(default_factory=lambda: ["embedding"])

    def digests(self) -> list[str]:
        return ["sha256:" + hashlib.sha256(data).hexdigest() for data in self.layers]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.layers)

    @property
    def manifest_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.digests()).encode()).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


class FakeOllama:
    """The server. ``library`` holds what can be pulled, ``installed`` what has been pulled."""

    def __init__(self, blobs_dir: Path) -> None:
        self.blobs_dir = blobs_dir
        self.library: dict[str, FakeModel] = {}
        self.installed: dict[str, FakeModel] = {}
        self.requests: list[Recorded] = []
        #: An error line sent after the first layer's progress (e.g. a network failure).
        self.pull_error: str | None = None
        #: End the pull stream without the final "success" line.
        self.truncate_pull = False
        #: Cut the connection in the middle of the pull stream (a crashing server).
        self.drop_pull = False
        #: Answer /api/tags with a 500 error.
        self.fail_tags = False
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- content -------------------------------------------------------------------------------

    def add(self, model: FakeModel, *, installed: bool = False) -> FakeModel:
        self.library[canonical(model.name)] = model
        if installed:
            self._install(model)
        return model

    def _install(self, model: FakeModel) -> None:
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        for digest, data in zip(model.digests(), model.layers, strict=True):
            (self.blobs_dir / digest.replace(":", "-")).write_bytes(data)
        with self._lock:
            self.installed[canonical(model.name)] = model

    def blob_path(self, model: FakeModel) -> Path:
        return self.blobs_dir / model.digests()[0].replace(":", "-")

    def calls(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeOllama:
        handler = type("BoundHandler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- API -----------------------------------------------------------------------------------

    def handle(self, h: _Handler, method: str, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, body))
        route = {
            ("GET", "/"): lambda: h.send_text(200, "Ollama is running"),
            ("HEAD", "/"): lambda: h.send_text(200, ""),
            ("GET", "/api/version"): lambda: h.send_json(200, {"version": VERSION}),
            ("POST", "/api/pull"): lambda: self.pull(h, body),
            ("GET", "/api/tags"): lambda: (
                h.send_json(500, {"error": "database is locked"})
                if self.fail_tags
                else h.send_json(200, {"models": self.tags()})
            ),
            ("POST", "/api/show"): lambda: self.show(h, body),
            ("DELETE", "/api/delete"): lambda: self.delete(h, body),
            ("POST", "/api/embed"): lambda: self.embed(h, body),
        }.get((method, path))
        if route is None:
            h.send_text(404, "404 page not found")
            return
        if method in ("POST", "DELETE") and not isinstance(body, dict):
            h.send_json(400, {"error": "invalid request body"})
            return
        route()

    def _model_name(self, body: dict[str, Any]) -> str:
        return str(body.get("model") or body.get("name") or "")

    def pull(self, h: _Handler, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        if not name:
            h.send_json(400, {"error": "model is required"})
            return
        h.start_stream()
        h.send_line({"status": "pulling manifest"})
        model = self.library.get(canonical(name))
        if model is None:
            h.send_line({"error": "pull model manifest: file does not exist"})
            h.end_stream()
            return
        for i, (digest, data) in enumerate(zip(model.digests(), model.layers, strict=True)):
            status = f"pulling {digest[7:19]}"
            h.send_line({"status": status, "digest": digest, "total": len(data)})
            for done in (len(data) // 2, len(data)):
                h.send_line({"status": status, "digest": digest, "total": len(data), "completed": done})
            if i == 0 and self.pull_error:
                h.send_line({"error": self.pull_error})
                h.end_stream()
                return
            if i == 0 and self.drop_pull:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
        if self.truncate_pull:
            h.end_stream()
            return
        for status in ("verifying sha256 digest", "writing manifest"):
            h.send_line({"status": status})
        self._install(model)
        h.send_line({"status": "success"})
        h.end_stream()

    def tags(self) -> list[dict[str, Any]]:
        with self._lock:
            models = list(self.installed.values())
        return [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": MODIFIED_AT,
                "size": m.size,
                "digest": m.manifest_digest,
                "details": self._details(m),
            }
            for m in models
        ]

    def _details(self, m: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": m.family,
            "families": [m.family],
            "parameter_size": "596M",
            "quantization_level": "Q8_0",
        }

    def show(self, h: _Handler, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        model = self.installed.get(canonical(name))
        if model is None:
            h.send_json(404, {"error": f"model '{name}' not found"})
            return
        h.send_json(
            200,
            {
                "license": "Apache-2.0",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {self.blob_path(model)}\n',
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": self._details(model),
                "model_info": {
                    "general.architecture": model.family,
                    f"{model.family}.context_length": 32768,
                    f"{model.family}.embedding_length": model.dims,
                },
                "capabilities": model.capabilities,
                "modified_at": MODIFIED_AT,
            },
        )

    def delete(self, h: _Handler, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        with self._lock:
            removed = self.installed.pop(canonical(name), None)
        if removed is None:
            h.send_json(404, {"error": f"model '{name}' not found"})
            return
        h.send_text(200, "")

    def embed(self, h: _Handler, body: dict[str, Any]) -> None:
        name = self._model_name(body)
        model = self.installed.get(canonical(name))
        if model is None:
            h.send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        if "embedding" not in model.capabilities:
            h.send_json(400, {"error": f'"{name}" does not support embeddings'})
            return
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            h.send_json(400, {"error": "invalid input type"})
            return
        dims = body.get("dimensions") or model.dims
        if not isinstance(dims, int) or not 0 < dims <= model.dims:
            h.send_json(400, {"error": f"dimensions must be between 1 and {model.dims}"})
            return
        h.send_json(
            200,
            {
                "model": name,
                "embeddings": [vector(text, model.dims)[:dims] for text in texts],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            },
        )


def vector(text: str, dims: int) -> list[float]:
    """A deterministic L2-normalised vector for ``text`` (normalised again after a cut)."""
    raw = [b - 127.5 for b in hashlib.sha256(text.encode()).digest()[:dims]]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.app.handle(self, self.command, self.path.split("?", 1)[0], body)

    do_GET = do_POST = do_DELETE = do_HEAD = _dispatch

    def send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

    def send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # Ollama streams NDJSON with chunked transfer encoding.
    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_line(self, data: dict[str, Any]) -> None:
        line = json.dumps(data).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
