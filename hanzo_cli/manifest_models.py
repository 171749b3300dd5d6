"""Models kept as Ollama-layout manifests (in hanzo's store or ``$OLLAMA_MODELS``), as providers
report them: :class:`~hanzo_cli.providers.ModelInfo` built from a :class:`~hanzo_cli.store.Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError
from hanzo_cli.fsutil import mtime
from hanzo_cli.output import warn
from hanzo_cli.providers import ModelFile, ModelInfo
from hanzo_cli.store import DEFAULT_HOST, ManifestName, Store


def manifest_model_info(
    store: Store, provider: str, name: ManifestName, path: Path, *, default_host: str = DEFAULT_HOST
) -> ModelInfo:
    """The model a stored manifest describes; its ``path`` is the model layer's blob."""
    manifest = store.read_manifest(path)
    model_layer = manifest.model_layer()
    files = [
        ModelFile(store.blob_path(layer.digest), layer.size, layer.digest, layer.kind)
        for layer in manifest.blobs
    ]
    missing = [f.digest for f in files if not f.path.exists()]
    details: dict[str, Any] = {
        "manifest": str(path),
        "model_digest": model_layer.digest if model_layer else None,
    }
    if missing:
        details["missing_blobs"] = missing
    return ModelInfo(
        provider=provider,
        name=name.display(default_host),
        size=manifest.total_size,
        digest=manifest.digest,
        path=store.blob_path(model_layer.digest) if model_layer else None,
        modified_at=mtime(path),
        files=files,
        details=details,
    )


def manifest_model_infos(
    store: Store, provider: str, hosts: Callable[[str], bool], *, default_host: str = DEFAULT_HOST
) -> Iterator[ModelInfo]:
    """:func:`manifest_model_info` of every manifest whose host ``hosts`` accepts. An unreadable one
    is skipped with a warning: the store may be shared with Ollama, and one bad file must not hide
    every model."""
    for name, path in store.manifests():
        if not hosts(name.host):
            continue
        try:
            yield manifest_model_info(store, provider, name, path, default_host=default_host)
        except (HanzoError, OSError) as exc:
            warn(f"{provider}: skipping {path}: {exc}")
