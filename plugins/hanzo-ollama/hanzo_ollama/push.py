"""``model:push``: upload a model from the Ollama layout on disk to a registry.

The source is a manifest in ``$OLLAMA_MODELS`` (else hanzo's store), or a GGUF imported with
``hanzo model:import`` (``local:NAME``). Blobs the registry already has (``HEAD``) are skipped; the
others are uploaded monolithically (``POST`` then one streamed ``PUT``); the manifest goes last, so
the registry never names a model whose blobs it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError, NotFoundError
from hanzo_cli.store import ManifestName, Store, digest_hex
from hanzo_ollama.provider import LOCAL_HOST, OllamaProvider, unique_layers


@dataclass
class PushResult:
    """What ``model:push`` did."""

    source: str
    destination: str
    digest: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": self.digest,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
        }


def find_source(ref: str, provider: OllamaProvider) -> tuple[Store, ManifestName, Path]:
    """The stored manifest ``ref`` names: ``[ollama:]name`` in the Ollama store, ``local:name``
    among imported models; a bare name tries both, in that order."""
    from hanzo_cli.refs import parse_ref

    parsed = parse_ref(ref, {"ollama", LOCAL_HOST})
    stores: list[tuple[Store, ManifestName]] = []
    if parsed.provider in (None, "ollama"):
        mname = ManifestName.parse(parsed.name)
        if mname.host != LOCAL_HOST:
            stores.append((provider.store, mname))
    if parsed.provider in (None, LOCAL_HOST):
        try:
            mname = ManifestName.parse(parsed.name, host=LOCAL_HOST)
        except HanzoError:
            if parsed.provider:
                raise
        else:
            if mname.host == LOCAL_HOST:
                stores.append((Store.default(), mname))
    for store, mname in stores:
        found = store.find_manifest(mname)
        if found is not None:
            return store, found[0], found[1]
    where = ", ".join(sorted({str(store.root) for store, _ in stores})) or "any store"
    raise NotFoundError(f"model {ref!r} not found in {where}; pull or import it first")


def push_model(
    ref: str, dest: str, *, insecure: bool = False, provider: OllamaProvider | None = None
) -> PushResult:
    """Upload the model ``ref`` to ``dest`` (``[host/][namespace/]model[:tag]``)."""
    import httpx

    from hanzo_cli.output import info, progress_bar
    from hanzo_ollama.registry import RegistryClient, RegistryName

    store, mname, path = find_source(ref, provider or OllamaProvider())
    manifest = store.read_manifest(path)
    for layer in manifest.blobs:
        if not store.has_blob(layer.digest, layer.size):
            raise HanzoError(
                f"blob {layer.digest} of {mname.display()} is missing or incomplete in {store.root}; "
                "pull the model again before pushing it"
            )
    target = RegistryName.parse(dest, insecure=insecure)
    result = PushResult(mname.display(), target.name.display(), manifest.digest)
    # No redirects: a registry answering HEAD with a redirect to its storage has the blob.
    with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0), follow_redirects=False) as client:
        registry = RegistryClient(target, client)
        for layer in unique_layers(manifest.blobs):
            short = digest_hex(layer.digest)[:12]
            if registry.has_blob(layer.digest):
                info(f"{short}: already on {target.name.host}")
                result.skipped.append(layer.digest)
                continue
            bar = progress_bar(f"pushing {short}", layer.size)
            try:
                registry.upload_blob(store.blob_path(layer.digest), layer, bar)
            finally:
                bar.close()
            result.uploaded.append(layer.digest)
        registry.put_manifest(manifest.raw)
    return result
