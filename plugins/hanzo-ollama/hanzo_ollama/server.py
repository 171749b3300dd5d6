"""A client for a running Ollama server's HTTP API (``OLLAMA_HOST``), in plain httpx.

Only what hanzo needs: version (is it up?), pull (NDJSON progress relayed to progress bars),
tags, show, delete and embed. Ollama reports pull failures as an ``{"error": …}`` line inside a
200 stream, so every line is checked.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanzo_cli.api import HanzoError, ModelFile, ModelInfo, ModelNotFoundError, digest_hex

if TYPE_CHECKING:
    import httpx

DEFAULT_PORT = "11434"
PROBE_TIMEOUT = 0.5
#: Generous read timeouts: Ollama may load a model, or verify a large blob, before it answers.
READ_TIMEOUT = 600.0
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def ollama_host() -> str:
    """The server's base URL from ``OLLAMA_HOST``, read the way Ollama reads it (envconfig.Host):
    a missing scheme means http, a missing port means 11434 (80/443 with an explicit scheme)."""
    value = os.environ.get("OLLAMA_HOST", "").strip().strip("\"'")
    scheme, sep, hostport = value.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", value
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    hostport, _, path = hostport.partition("/")
    host, port = _split_host_port(hostport)
    host = host or "127.0.0.1"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    base = f"{scheme}://{host}:{port or default_port}"
    return f"{base}/{path.rstrip('/')}" if path.strip("/") else base


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, port
    return hostport, ""  # a bare name, or an IPv6 literal without brackets


class OllamaError(HanzoError):
    """An error message from the Ollama server."""


class OllamaServer:
    """A running Ollama server at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @classmethod
    def probe(cls, base_url: str | None = None, timeout: float = PROBE_TIMEOUT) -> OllamaServer | None:
        """The server if it answers ``GET /api/version`` quickly, else None.

        Plain http.client rather than httpx: when no server runs (native mode), commands such as
        ``model:list`` then never pay the ~0.4 s import of httpx.
        """
        import http.client
        from urllib.parse import urlsplit

        server = cls(base_url or ollama_host())
        url = urlsplit(server.base_url)
        connection_class = (
            http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        )
        try:
            connection = connection_class(url.hostname or "127.0.0.1", url.port, timeout=timeout)
            try:
                connection.request("GET", url.path.rstrip("/") + "/api/version")
                response = connection.getresponse()
                answered = response.status == 200 and "version" in json.loads(response.read(4096))
            finally:
                connection.close()
        except (OSError, http.client.HTTPException, ValueError, TypeError):
            return None
        return server if answered else None

    def _client(self) -> httpx.Client:
        import httpx

        return httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(10.0, read=READ_TIMEOUT),
            # Loading the CA bundle costs ~0.15 s per client; plain-http servers never need it.
            verify=self.base_url.startswith("https:"),
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One request; a server that stops answering is an OllamaError, not a traceback."""
        import httpx

        try:
            with self._client() as client:
                return client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise self._gone(exc) from None

    def _gone(self, exc: Exception) -> OllamaError:
        return OllamaError(f"Ollama at {self.base_url} stopped answering: {exc or type(exc).__name__}")

    # -- pull ------------------------------------------------------------------------------------

    def pull(self, name: str, *, insecure: bool = False) -> None:
        """``POST /api/pull``: one progress bar per layer digest; fails on any error line."""
        import httpx

        body = {"model": name, "insecure": insecure, "stream": True}
        try:
            with self._client() as client, client.stream("POST", "/api/pull", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error(response, name)
                last_status = _relay_progress(response.iter_lines(), name)
        except httpx.TransportError as exc:
            raise self._gone(exc) from None
        if last_status != "success":
            raise OllamaError(
                f"Ollama's pull of {name!r} ended without success (last status {last_status!r})"
            )

    # -- models ----------------------------------------------------------------------------------

    def tags(self) -> list[ModelInfo]:
        """``GET /api/tags`` as ModelInfos (no paths: those need ``/api/show``)."""
        response = self._call("GET", "/api/tags")
        if response.status_code != 200:
            raise _error(response, "the model list")
        models = _json_object(response.text, "/api/tags answer").get("models")
        if not isinstance(models, list):
            raise OllamaError("Ollama's /api/tags answer has no models list")
        return [self._tag_info(entry) for entry in models if isinstance(entry, dict) and entry.get("name")]

    def show(self, name: str, listed: ModelInfo) -> ModelInfo:
        """Add ``/api/show``'s details to a listed model; ``path`` is its GGUF if on this machine."""
        response = self._call("POST", "/api/show", {"model": listed.name})
        if response.status_code != 200:
            raise _error(response, name)
        data = _json_object(response.text, "/api/show answer")
        details = dict(listed.details)
        details["capabilities"] = data.get("capabilities") or []
        model_info = data.get("model_info")
        if isinstance(model_info, dict):
            details["model_info"] = model_info
        path = _model_path(data.get("modelfile"))
        files = list(listed.files)
        if path is not None:
            size = path.stat().st_size
            files.append(ModelFile(path, size, "sha256:" + path.name[len("sha256-") :], "model"))
        return ModelInfo(
            provider=listed.provider,
            name=listed.name,
            size=listed.size,
            digest=listed.digest,
            path=path,
            modified_at=listed.modified_at,
            files=files,
            details=details,
        )

    def delete(self, name: str) -> bool:
        """``DELETE /api/delete``; False when the server does not have the model (404)."""
        response = self._call("DELETE", "/api/delete", {"model": name})
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise _error(response, name)
        return True

    def _tag_info(self, entry: dict[str, Any]) -> ModelInfo:
        digest = entry.get("digest")
        if isinstance(digest, str) and not digest.startswith("sha256:"):
            digest = "sha256:" + digest  # /api/tags gives the bare hex
        raw_details = entry.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        size = entry.get("size")
        return ModelInfo(
            provider="ollama",
            name=str(entry["name"]),
            size=size if isinstance(size, int) else 0,
            digest=digest if isinstance(digest, str) else None,
            modified_at=_parse_time(entry.get("modified_at")),
            details={"server": self.base_url, **details},
        )


def _relay_progress(lines: Iterator[str], name: str) -> str:
    """Turn Ollama's NDJSON pull stream into one bar per layer digest; return the last status."""
    from hanzo_cli.api import ProgressGroup, info

    last_status = ""
    with ProgressGroup() as bars:
        for line in lines:
            if not line.strip():
                continue
            event = _json_object(line, "pull progress line")
            if "error" in event:
                raise _message_error(str(event["error"]), name)
            status = str(event.get("status", ""))
            digest = event.get("digest")
            if isinstance(digest, str) and digest:
                total = event.get("total")
                bar = bars.bar(digest, status, total if isinstance(total, int) else None)
                completed = event.get("completed")
                if isinstance(completed, int):
                    bar.set_completed(completed)
            elif status and status != last_status:
                info(status)
            last_status = status or last_status
    return last_status


def _model_path(modelfile: Any) -> Path | None:
    """The model blob named by a Modelfile's ``FROM`` line, when that file exists here."""
    if not isinstance(modelfile, str):
        return None
    for line in modelfile.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            path = Path(value.strip())
            if path.is_absolute() and _is_blob_name(path.name) and path.is_file():
                return path
    return None


def _is_blob_name(name: str) -> bool:
    try:
        digest_hex(name)
    except HanzoError:
        return False
    return True


def _parse_time(value: Any) -> datetime | None:
    """Go's RFC 3339 with nanoseconds, which Python 3.10's fromisoformat does not read."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(_FRACTION_RE.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise OllamaError(f"Ollama sent an invalid {what}: {text[:100]!r}") from None
    if not isinstance(data, dict):
        raise OllamaError(f"Ollama sent an invalid {what}: {text[:100]!r}")
    return data


def _message_error(message: str, name: str) -> HanzoError:
    lowered = message.lower()
    if "not found" in lowered or "file does not exist" in lowered:
        return ModelNotFoundError(f"model {name!r} not found (Ollama: {message})")
    return OllamaError(f"Ollama: {message}")


def _error(response: httpx.Response, name: str) -> HanzoError:
    """The error of a non-200 answer: ``{"error": …}`` if present, else the status."""
    try:
        message = str(json.loads(response.text)["error"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code} {response.text[:200]}".strip()
    if response.status_code == 404:
        return ModelNotFoundError(f"model {name!r} not found (Ollama: {message})")
    return _message_error(message, name)
