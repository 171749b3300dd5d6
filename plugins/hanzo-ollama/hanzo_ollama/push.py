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

from hanzo_cli.api import (
    LOCAL_HOST,
    HanzoError,
    Manifest,
    ManifestName,
    NotFoundError,
    digest_hex,
    get_provider,
    parse_manifest,
    ssl_context,
)
from hanzo_ollama.provider import OllamaProvider, unique_layers


@dataclass
class PushResult:
    """What ``model:push`` did."""

    source: str
    destination: str
    digest: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)  # linked from another repository there

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "digest": self.digest,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "mounted": self.mounted,
        }


@dataclass
class PushSource:
    """A stored model to push: its manifest and where each of its blobs is on disk."""

    label: str
    manifest: Manifest
    blobs: dict[str, Path]
    root: Path


def find_source(ref: str, provider: OllamaProvider) -> PushSource:
    """The stored model ``ref`` names: ``[ollama:]name`` in the Ollama store, ``local:name`` among
    models imported with ``hanzo model:import`` (through the local provider); a bare name tries both,
    in that order."""
    prefix, sep, rest = ref.partition(":")
    wanted = [(prefix.lower(), rest)] if sep and prefix.lower() in ("ollama", LOCAL_HOST) else []
    wanted = wanted or [("ollama", ref), (LOCAL_HOST, ref)]
    searched: list[str] = []
    for source, name in wanted:
        if source == "ollama":
            store = provider.store
            searched.append(str(store.root))
            mname = ManifestName.parse(name)
            found = store.find_manifest(mname) if mname.host != LOCAL_HOST else None
            if found is not None:
                manifest = store.read_manifest(found[1])
                blobs = {layer.digest: store.blob_path(layer.digest) for layer in manifest.blobs}
                return PushSource(found[0].display(), manifest, blobs, store.root)
            continue
        local = get_provider(LOCAL_HOST)
        searched.append("local")
        if not local.accepts(name):
            if sep:
                raise HanzoError(f"{name!r} is not a valid local model name")
            continue
        model = local.get(name)
        manifest_path = model.details.get("manifest") if model else None
        if model is not None and manifest_path:
            manifest = parse_manifest(Path(manifest_path).read_bytes())
            blobs = {f.digest: f.path for f in model.files if f.digest}
            return PushSource(model.name, manifest, blobs, Path(manifest_path).parent)
    raise NotFoundError(f"model {ref!r} not found in {', '.join(searched)}; pull or import it first")


def push_model(
    ref: str, dest: str, *, insecure: bool = False, provider: OllamaProvider | None = None
) -> PushResult:
    """Upload the model ``ref`` to ``dest`` (``[host/][namespace/]model[:tag]``)."""
    return push_source(find_source(ref, provider or OllamaProvider()), dest, insecure=insecure)


def push_source(
    source: PushSource, dest: str, *, insecure: bool = False, mounts: dict[str, str] | None = None
) -> PushResult:
    """Upload ``source`` to ``dest``. ``mounts`` maps digests to repositories of the same registry
    that hold them (from earlier pushes): those are mounted, not uploaded; it is updated."""
    import httpx

    from hanzo_cli.api import info, progress_bar
    from hanzo_ollama.registry import RegistryClient, RegistryName

    mounts = {} if mounts is None else mounts
    manifest = source.manifest
    for layer in manifest.blobs:
        blob = source.blobs.get(layer.digest)
        if blob is None or not blob.is_file() or blob.stat().st_size != layer.size:
            raise HanzoError(
                f"blob {layer.digest} of {source.label} is missing or incomplete in {source.root}; "
                "pull the model again before pushing it"
            )
    target = RegistryName.parse(dest, insecure=insecure)
    result = PushResult(source.label, target.name.display(), manifest.digest)
    # No redirects: a registry answering HEAD with a redirect to its storage has the blob.
    with httpx.Client(
        timeout=httpx.Timeout(30.0, read=300.0), follow_redirects=False, verify=ssl_context()
    ) as client:
        registry = RegistryClient(target, client)
        for layer in unique_layers(manifest.blobs):
            short = digest_hex(layer.digest)[:12]
            if registry.has_blob(layer.digest):
                info(f"{short}: already on {target.name.host}")
                result.skipped.append(layer.digest)
                continue
            origin = mounts.get(layer.digest)
            if (
                origin is not None
                and origin != target.repository
                and registry.mount_blob(layer.digest, origin)
            ):
                info(f"{short}: mounted from {origin}")
                result.mounted.append(layer.digest)
                continue
            bar = progress_bar(f"pushing {short}", layer.size)
            try:
                registry.upload_blob(source.blobs[layer.digest], layer, bar)
            finally:
                bar.close()
            result.uploaded.append(layer.digest)
        registry.put_manifest(manifest.raw)
    for layer in manifest.blobs:
        mounts.setdefault(layer.digest, target.repository)
    return result
