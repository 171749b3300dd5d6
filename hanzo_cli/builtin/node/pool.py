"""The models a built-in node has loaded: any local model by name, loaded on demand, unloaded when idle.

- Models named at start (``--model``, repeatable) load at once and stay loaded (also when loaded
  again after an eviction) unless a request's ``keep_alive`` says otherwise; the first is the
  default for requests that name no model.
- A request naming another local model loads it (it is never pulled unless the node runs with
  ``--pull-missing``); it stays ``--keep-alive`` seconds after its last request (Ollama's semantics:
  a request's own ``keep_alive`` wins, ``0`` unloads after the request, a negative one keeps it).
- With ``--max-loaded N`` (or a ``--max-memory`` budget of model bytes), loading one more model first
  unloads the least recently used idle one; when none is idle, the load waits until one is.
- Each model runs in its own worker process (:mod:`~.host`), so requests for different models run side by
  side and a model that crashes its runtime takes down only its worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from hanzo_cli.api import HanzoError, ModelInfo
from hanzo_cli.builtin.node.bodies import APIError
from hanzo_cli.builtin.node.constants import (
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_LOADED,
    DEFAULT_PARALLEL,
    REAP_INTERVAL,
)
from hanzo_cli.builtin.node.describe import capabilities, gguf_of
from hanzo_cli.builtin.node.host import ModelHost

log = logging.getLogger("hanzo.node")


@dataclass(frozen=True)
class KeepAlive:
    """A request's ``keep_alive``: seconds to stay loaded after it, None for forever."""

    seconds: float | None


@dataclass(frozen=True)
class PoolSettings:
    max_loaded: int = DEFAULT_MAX_LOADED  # 0: no limit
    keep_alive: float | None = DEFAULT_KEEP_ALIVE  # seconds; None forever
    pull_missing: bool = False
    runtime: str | None = None
    #: Bytes of model files loaded at once (0: no budget); the weights dominate a model's memory.
    max_memory: int = 0
    #: Generations a model decodes at once (continuous batching where the runtime can).
    parallel: int = DEFAULT_PARALLEL


def plain(name: str) -> str:
    """A model name as compared: case-insensitive, ``:latest`` implied."""
    return name.strip().lower().removesuffix(":latest")


class ModelPool:
    def __init__(self, settings: PoolSettings, preload: list[tuple[str, str]]) -> None:
        """``preload``: (reference, name the APIs report) of the models to load at start."""
        self.settings = settings
        self.preload = preload
        self.hosts: dict[str, ModelHost] = {}  # provider:name -> host (loading or loaded)
        self._names: dict[str, str] = {}  # plain(requested name) -> provider:name
        self._infos: dict[str, ModelInfo] = {}
        self._caps: dict[str, list[str]] = {}
        self._display: dict[str, str] = {}  # provider:name -> the name given at start
        self._create = asyncio.Lock()
        self._preloaded: list[ModelHost] = []
        self._pinned: set[str] = set()  # provider:name of the models named at start
        self._started = False  # every model named at start has loaded once
        self.on_fatal: Callable[[str], None] = lambda message: None

    # -- names ---------------------------------------------------------------------------------------

    @property
    def default_name(self) -> str | None:
        return self.preload[0][1] if self.preload else None

    async def resolve(self, requested: str | None) -> ModelInfo:
        """The local model a request names (the first preloaded one when it names none); 404 if none."""
        if requested is None:
            if not self.preload:
                raise APIError(400, "model is required", "model")
            requested = self.preload[0][0]
        key = self._names.get(plain(requested))
        if key is not None:
            return self._infos[key]
        try:
            info = await asyncio.to_thread(self._find, requested)
        except HanzoError as exc:
            raise APIError(404, f"model '{requested}' not found ({exc.message})", "model") from None
        if info is None:
            raise APIError(404, f"model '{requested}' not found", "model")
        key = f"{info.provider}:{info.name}"
        self._infos.setdefault(key, info)
        self._display.setdefault(key, requested)
        for alias in (requested, key, info.name):
            self._names.setdefault(plain(alias), key)
        return self._infos[key]

    def _find(self, requested: str) -> ModelInfo | None:
        from hanzo_cli import models  # reference resolution is not public API yet

        found = models.find(requested)
        if (found is None or found.path is None) and self.settings.pull_missing:
            log.info("pulling %s (--pull-missing)", requested)
            found = models.pull(requested)
        return found if found is not None and found.path is not None else None

    async def _capabilities(self, info: ModelInfo) -> list[str]:
        """The model's capabilities, read once (a GGUF header with a large vocabulary takes a while)."""
        key = f"{info.provider}:{info.name}"
        if key not in self._caps:
            self._caps[key] = await asyncio.to_thread(_capabilities, info)
        return self._caps[key]

    def display_name(self, info: ModelInfo) -> str:
        """The name given at start, else the first name a request used, else ``provider:name``."""
        key = f"{info.provider}:{info.name}"
        return self._display.get(key) or key

    # -- loading -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the models named at start, one after the other; a failure stops the node."""
        for ref, name in self.preload:
            try:
                info = await self.resolve(ref)
            except APIError as exc:
                self.on_fatal(exc.message)
                return
            self._display[f"{info.provider}:{info.name}"] = name
            self._pinned.add(f"{info.provider}:{info.name}")
            self._names.setdefault(plain(name), f"{info.provider}:{info.name}")
            host = await self._host(info, keep_alive=None)
            self._preloaded.append(host)
            await host.settled.wait()
            if host.error is not None:
                self.on_fatal(host.error)
                return
        self._started = True

    @property
    def ready(self) -> bool:
        """Whether the models named at start have loaded (one unloaded since loads again on demand)."""
        return self._started

    @property
    def error(self) -> str | None:
        return next((h.error for h in self._preloaded if h.error), None)

    async def _host(self, info: ModelInfo, keep_alive: float | None, role: str = "embed") -> ModelHost:
        key = f"{info.provider}:{info.name}" + ("" if role == "embed" else f"#{role}")
        host = self.hosts.get(key)
        if host is not None and host.dead is None:
            return host
        async with self._create:
            host = self.hosts.get(key)
            if host is not None and host.dead is not None:  # its worker died: start a new one
                await self.unload(host)
                host = None
            if host is None:
                await self._make_room(info)
                host = ModelHost(
                    info,
                    self.display_name(info),
                    self.settings.runtime,
                    role,
                    keep_alive,
                    self.settings.parallel,
                )
                self.hosts[key] = host
                host.start_loading()
            return host

    async def _make_room(self, info: ModelInfo) -> None:
        """Unload least recently used idle models until ``info`` fits under ``max_loaded`` and the
        memory budget (a model larger than the whole budget still loads, alone)."""
        limit, budget = self.settings.max_loaded, self.settings.max_memory

        def full() -> bool:
            if limit and len(self.hosts) >= limit:
                return True
            used = sum(h.info.size or 0 for h in self.hosts.values())
            return bool(budget and self.hosts and used + (info.size or 0) > budget)

        while full():
            idle = [h for h in self.hosts.values() if (h.active == 0 and h.settled.is_set()) or h.dead]
            if not idle:
                await asyncio.sleep(0.05)  # every model is busy: wait for one to finish
                continue
            await self.unload(min(idle, key=lambda h: h.last_used))

    async def unload(self, host: ModelHost) -> None:
        if self.hosts.get(host.key) is host:
            del self.hosts[host.key]
        log.info("unloading %s", host.ref)
        await host.unload()

    @asynccontextmanager
    async def use(
        self, requested: str | None, keep_alive: KeepAlive | None = None, role: str = "embed"
    ) -> AsyncIterator[ModelHost]:
        """The model a request names, loaded (or loading), marked busy while the request runs.
        ``keep_alive`` is the request's own, if it gave one; it then becomes the model's."""
        info = await self.resolve(requested)
        if role == "generate" and "completion" not in await self._capabilities(info):
            raise APIError(400, f"{requested or info.name} does not generate text (it embeds or reranks)")
        pinned = f"{info.provider}:{info.name}" in self._pinned
        keep = None if pinned and role == "embed" else self.settings.keep_alive
        host = await self._host(info, keep, role)
        host.active += 1
        try:
            yield host
        finally:
            host.active -= 1
            host.last_used = time.monotonic()
            if keep_alive is not None:
                host.keep_alive = keep_alive.seconds
            seconds = host.keep_alive
            host.expires = None if seconds is None else host.last_used + seconds
            if host.settled.is_set() and host.error is not None and host not in self._preloaded:
                self.hosts.pop(host.key, None)  # a failed load is tried again by the next request
            elif seconds == 0 and host.active == 0 and host.ready:
                await self.unload(host)

    async def reap(self) -> None:
        """Forever: unload idle models whose keep-alive has passed."""
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            now = time.monotonic()
            for host in list(self.hosts.values()):
                expired = host.expires is not None and now >= host.expires
                if host.active == 0 and ((expired and host.ready) or host.dead):
                    await self.unload(host)

    async def close(self) -> None:
        for host in list(self.hosts.values()):
            await self.unload(host)


def _capabilities(info: ModelInfo) -> list[str]:
    return capabilities(gguf_of(info))
