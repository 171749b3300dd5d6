"""The ``ollama`` provider: through a running Ollama server, or natively from any Ollama/OCI registry.

*Server mode* is used when an Ollama server answers at ``OLLAMA_HOST`` (probed with a 0.5 s
timeout); *native mode* otherwise, or with ``--native``. Native pulls write Ollama's on-disk
layout into ``$OLLAMA_MODELS`` when it is set (so a later ``ollama serve`` finds the model without
downloading it again), else into hanzo's store. Listing, showing and deleting look at both the
server (if up) and the layout on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from hanzo_cli.api import (
    LOCAL_HOST,
    DiskFullError,
    HanzoError,
    Layer,
    ManifestName,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    PullOption,
    PullOptions,
    Reclaimable,
    RemoteFileNotFoundError,
    RemoteVersion,
    Store,
    digest_hex,
    info,
    link_verified,
    manifest_model_info,
    manifest_model_infos,
    parse_manifest,
    ssl_context,
    warn,
)
from hanzo_ollama.server import OllamaServer


class OllamaProvider(Provider):
    """Ollama models: pulled through a running Ollama, or natively from a registry."""

    name = "ollama"
    description = "Ollama: through a running Ollama server, or natively from any Ollama/OCI registry"
    priority = 10
    pull_options: ClassVar[Sequence[PullOption]] = (
        PullOption(
            "native",
            ("--native",),
            "Speak the registry protocol directly even when an Ollama server is running.",
            is_flag=True,
        ),
    )

    def __init__(self, store_root: Path | None = None, server_url: str | None = None) -> None:
        self._store_root = store_root
        self._server_url = server_url

    @property
    def store(self) -> Store:
        """``$OLLAMA_MODELS`` when set, else hanzo's store."""
        if self._store_root is not None:
            return Store(self._store_root)
        env = os.environ.get("OLLAMA_MODELS", "").strip()
        return Store(Path(env).expanduser()) if env else Store.default()

    def server(self) -> OllamaServer | None:
        """The Ollama server at ``OLLAMA_HOST`` if one answers now."""
        return OllamaServer.probe(self._server_url)

    def accepts(self, name: str) -> bool:
        from hanzo_ollama.lifecycle import split_digest

        try:
            ManifestName.parse(split_digest(name)[0])
        except HanzoError:
            return False
        return True

    def normalize(self, name: str) -> str:
        from hanzo_ollama.lifecycle import split_digest

        try:
            return ManifestName.parse(split_digest(name)[0]).display().lower()
        except HanzoError:
            return name.strip().lower()

    # -- pull ------------------------------------------------------------------------------------

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        pinned = "@" in name  # by digest: natively, where the manifest's bytes can be checked
        server = None if options.extra.get("native") or pinned else self.server()
        if server is None:
            return self.pull_native(name, insecure=options.insecure)
        server.pull(name, insecure=options.insecure)
        # What the server now has, not a copy of the same name hanzo's store may hold from before.
        found = self._server_get(server, name)
        if found is None:
            raise HanzoError(f"Ollama pulled {name!r} but does not list it")
        return found

    def pull_native(self, name: str, *, insecure: bool = False) -> ModelInfo:
        """Fetch the manifest, validate it, download the missing blobs, then write the manifest.

        ``NAME@sha256:<hex>`` fetches the manifest by digest, refuses other bytes, and pins the
        model (see :mod:`hanzo_ollama.lifecycle`); a pull by tag drops an earlier pin."""
        import httpx

        from hanzo_ollama.lifecycle import check_manifest_digest, pulling, set_pin, split_digest
        from hanzo_ollama.registry import RegistryName, RegistrySources

        name, pinned = split_digest(name)
        target = RegistryName.parse(name, insecure=insecure)
        store = self.store
        with (
            httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=True, verify=ssl_context()) as client,
            contextlib.ExitStack() as keep,
        ):
            registry = RegistrySources(target, client, info)  # its mirrors first, if any
            raw = registry.fetch_manifest(pinned)
            if pinned:
                check_manifest_digest(raw, pinned, target.name.display())
            manifest = parse_manifest(raw)  # refuse hostile manifests before anything is written
            # Until the manifest is written, model:prune (any process) keeps the blobs it names.
            keep.enter_context(pulling(store, (layer.digest for layer in manifest.blobs)))
            # Blobs found in place (Ollama's, an older hanzo's) are verified before they are trusted.
            missing = unique_layers(
                layer for layer in manifest.blobs if not store.check_blob(layer.digest, layer.size)
            )
            _check_free_space(store, missing, target.name.display())
            for layer in missing:
                if link_verified(digest_hex(layer.digest), layer.size, store.blob_path(layer.digest)):
                    continue  # verified in another store already: one copy, nothing downloaded
                try:
                    registry.pull_blob(store, layer, f"pulling {digest_hex(layer.digest)[:12]}")
                except RemoteFileNotFoundError:
                    # The model exists (its manifest came back): a missing blob is a broken
                    # registry, not a reason to try the next provider.
                    raise HanzoError(
                        f"{target.name.display()}: the registry has no blob {layer.digest} "
                        "that the manifest names"
                    ) from None
            # Re-pulling (under any spelling) replaces the stored manifest and drops blobs it alone
            # used, unless OLLAMA_NOPRUNE is set (server/images.go PullModel skips deleteUnusedLayers).
            mname = store.write_manifest(target.name, raw, prune=not no_prune())
            set_pin(store, mname, pinned)
        return manifest_model_info(store, self.name, mname, store.manifest_path(mname))

    # -- list, get, delete -------------------------------------------------------------------------

    def list(self) -> Iterable[ModelInfo]:
        """Models on disk, then those only the server has (one row per name)."""
        rows = {self.normalize(info.name): info for info in self._disk_models()}
        server = self.server()
        if server is not None:
            try:
                served = server.tags()
            except HanzoError as exc:  # the models on disk are still worth listing
                warn(f"ollama: {exc.message}")
                served = []
            for info in served:
                rows.setdefault(self.normalize(info.name), info)
        return list(rows.values())

    def get(self, name: str) -> ModelInfo | None:
        """The model on disk, else the server's (with its GGUF path when it is on this machine)."""
        on_disk = self._disk_get(name)
        if on_disk is not None:
            return on_disk
        server = self.server()
        return self._server_get(server, name) if server is not None else None

    def _server_get(self, server: OllamaServer, name: str) -> ModelInfo | None:
        wanted = self.normalize(name)
        listed = next((info for info in server.tags() if self.normalize(info.name) == wanted), None)
        return server.show(name, listed) if listed is not None else None

    def delete(self, name: str) -> ModelInfo:
        """Delete from the server (if up) and from disk; blobs other models use are kept."""
        found = self.get(name)
        if found is None:
            raise ModelNotFoundError(f"model {name!r} not found in ollama")
        server = self.server()
        if server is not None:
            server.delete(found.name)  # False (404): only the disk has it
        on_disk = self._disk_name(name)
        if on_disk is not None:
            from hanzo_ollama.lifecycle import set_pin

            # Ollama's DeleteHandler (server/routes.go) removes the manifest's unreferenced layers
            # whatever OLLAMA_NOPRUNE says: that variable only guards pulls, creates and start-up.
            self.store.delete(on_disk, prune=True)
            set_pin(self.store, on_disk, None)
        return found

    def serving_url(self, model: ModelInfo) -> str | None:
        """The running Ollama's URL when it has ``model`` (the node then lets Ollama serve it)."""
        if model.provider != self.name:
            return None
        server = self.server()
        if server is None:
            return None
        try:
            wanted = self.normalize(model.name)
            if any(self.normalize(info.name) == wanted for info in server.tags()):
                return server.base_url
        except HanzoError:
            return None
        return None

    # -- lifecycle (model:outdated, model:update, model:lock) ---------------------------------------

    def is_pinned(self, model: ModelInfo) -> bool:
        from hanzo_ollama.lifecycle import is_pinned

        return is_pinned(self.store, model)

    def remote_version(self, model: ModelInfo, options: PullOptions) -> RemoteVersion | None:
        from hanzo_ollama.lifecycle import remote_version

        return remote_version(self.store, model, options)

    def pull_exact(self, name: str, version: str, options: PullOptions) -> ModelInfo:
        from hanzo_ollama.lifecycle import split_digest

        return self.pull_native(f"{split_digest(name)[0]}@{version}", insecure=options.insecure)

    def reclaimable(self, partials_older_than: float) -> Sequence[Reclaimable]:
        from hanzo_ollama.lifecycle import reclaimable

        return reclaimable(self.store, self.name, partials_older_than)

    def reclaim(self, items: Sequence[Reclaimable], partials_older_than: float) -> Sequence[Reclaimable]:
        from hanzo_ollama.lifecycle import reclaim

        return reclaim(self.store, self.name, items, partials_older_than)

    # -- disk ------------------------------------------------------------------------------------

    def _disk_models(self) -> Iterable[ModelInfo]:
        return manifest_model_infos(self.store, self.name, lambda host: host != LOCAL_HOST)

    def _disk_name(self, name: str) -> ManifestName | None:
        from hanzo_ollama.lifecycle import split_digest

        try:
            wanted = ManifestName.parse(split_digest(name)[0])
        except HanzoError:
            return None
        found = self.store.find_manifest(wanted)
        return found[0] if found and found[0].host != LOCAL_HOST else None

    def _disk_get(self, name: str) -> ModelInfo | None:
        mname = self._disk_name(name)
        if mname is None:
            return None
        store = self.store
        return manifest_model_info(store, self.name, mname, store.manifest_path(mname))


def no_prune() -> bool:
    """``OLLAMA_NOPRUNE`` as Ollama reads it (envconfig.Bool): unset or empty is false; a value
    strconv.ParseBool accepts counts as written; anything else set counts as true."""
    value = os.environ.get("OLLAMA_NOPRUNE", "").strip().strip("\"'").strip()
    if not value:
        return False
    return value not in ("0", "f", "F", "FALSE", "false", "False")


def unique_layers(layers: Iterable[Layer]) -> list[Layer]:
    """Each digest once (a manifest may list one blob twice)."""
    seen: dict[str, Layer] = {}
    for layer in layers:
        seen.setdefault(layer.digest, layer)
    return list(seen.values())


def _check_free_space(store: Store, layers: Sequence[Layer], display: str) -> None:
    """Refuse to start a pull the disk cannot hold (bytes already in partials count as held)."""
    from hanzo_cli.api import human_size

    needed = 0
    for layer in layers:
        partial = store.partial_path(layer.digest)
        try:
            # Allocated bytes, not the length: partials are preallocated sparse files.
            held = getattr(partial.stat(), "st_blocks", 0) * 512
        except FileNotFoundError:
            held = 0
        needed += max(0, layer.size - held)
    probe = store.root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DiskFullError(
            f"not enough disk space to pull {display}: need {human_size(needed)}, "
            f"have {human_size(free)} free in {store.root}"
        )
