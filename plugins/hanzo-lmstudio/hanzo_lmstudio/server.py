"""What a running LM Studio says about its models: ``GET /api/v0/models`` (LM Studio 0.3.6+).

The documented answer is ``{"object": "list", "data": [{"id", "object": "model", "type":
"llm"|"embeddings"|"vlm", "publisher", "arch", "compatibility_type": "gguf"|"mlx",
"quantization", "state": "loaded"|"not-loaded", "max_context_length"}, …]}``.

LM Studio names models by a key, not by path: the lower-cased file name without quantization
(``meta-llama-3.1-8b-instruct``), ``text-embedding-`` in front for embedding models, sometimes
the publisher in front (``unsloth/…``) and ``@q4_k_m`` behind when a folder has several
quantizations. :func:`entries_for` matches keys to files by those rules; the rules are LM
Studio's behaviour as observed in its docs and issues, not a documented contract.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hanzo_cli.api import warn
from hanzo_lmstudio.library import LocalModel

HOST_ENV = "LMSTUDIO_HOST"
TOKEN_ENV = "LMSTUDIO_API_TOKEN"
DEFAULT_HOST = "http://127.0.0.1:1234"
#: LM Studio runs on this machine: a server that does not connect at once is not running.
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 5.0
_EMBEDDING_PREFIX = "text-embedding-"
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")


def host() -> str:
    """LM Studio's server URL (``LMSTUDIO_HOST``; ``host:port`` gets ``http://``)."""
    value = os.environ.get(HOST_ENV, "").strip() or DEFAULT_HOST
    if "://" not in value:
        value = f"http://{value}"
    return value.rstrip("/")


@dataclass(frozen=True)
class ServerModel:
    """One entry of ``/api/v0/models``."""

    id: str
    state: str
    publisher: str | None = None
    quantization: str | None = None
    type: str | None = None
    arch: str | None = None
    compatibility_type: str | None = None
    max_context_length: int | None = None

    @property
    def loaded(self) -> bool:
        return self.state == "loaded"

    @classmethod
    def from_json(cls, item: Any) -> ServerModel | None:
        """The entry, or None when it lacks the documented ``id`` and ``state``."""
        if not isinstance(item, dict):
            return None
        ident, state = item.get("id"), item.get("state")
        if not isinstance(ident, str) or not ident or not isinstance(state, str):
            return None

        def text(key: str) -> str | None:
            value = item.get(key)
            return value if isinstance(value, str) and value else None

        ctx = item.get("max_context_length")
        return cls(
            id=ident,
            state=state,
            publisher=text("publisher"),
            quantization=text("quantization"),
            type=text("type"),
            arch=text("arch"),
            compatibility_type=text("compatibility_type"),
            max_context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        )


def server_models() -> list[ServerModel] | None:
    """LM Studio's models and their state, or None when no LM Studio answers (it is optional)."""
    import httpx

    url = f"{host()}/api/v0/models"
    headers = {"Accept": "application/json"}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(
            url,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            # Loading the CA bundle costs ~0.2 s per command; plain-HTTP hosts never need it.
            verify=url.startswith("https://"),
        )
    except httpx.HTTPError:
        return None  # not running: nothing is loaded
    if response.status_code != 200:
        hint = f" (set {TOKEN_ENV})" if response.status_code in (401, 403) else ""
        warn(f"LM Studio at {host()} answered {response.status_code}{hint}; loaded state unknown")
        return None
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        warn(f"LM Studio at {host()} sent an unexpected answer to /api/v0/models; loaded state unknown")
        return None
    return [entry for item in data if (entry := ServerModel.from_json(item)) is not None]


def entries_for(model: LocalModel, entries: Iterable[ServerModel]) -> list[ServerModel]:
    """The server entries that name ``model`` (see the module docstring for the rules)."""
    quant = (model.quant or "").lower()
    names = {_key_of(model.path.name, quant), model.repo.lower().removesuffix("-gguf")}
    found = []
    for entry in entries:
        if entry.compatibility_type not in (None, "gguf"):
            continue
        key = entry.id.lower()
        publisher = (entry.publisher or "").lower()
        if "/" in key:
            publisher, key = key.rsplit("/", 1)
        key, _, key_quant = key.partition("@")
        key_quant = key_quant or (entry.quantization or "").lower()
        if publisher and publisher != model.publisher.lower():
            continue
        if key.removeprefix(_EMBEDDING_PREFIX) not in names and key not in names:
            continue
        if quant and key_quant and key_quant != quant:
            continue
        found.append(entry)
    return found


def _key_of(file_name: str, quant: str) -> str:
    """LM Studio's key for a file: ``Llama-3.1-8B-Instruct-Q4_K_M.gguf`` -> ``llama-3.1-8b-instruct``."""
    stem = _SHARD_SUFFIX.sub("", file_name.lower().removesuffix(".gguf"))
    if quant and stem.endswith(quant):
        stem = stem[: -len(quant)]
    return stem.rstrip("-._ ")
