"""The built-in ``local`` provider: GGUF files imported by hand (``hanzo model:import``).

Imported models live in hanzo's store under the host ``local`` as Ollama-style manifests, so an
Ollama pointed at the store (``OLLAMA_MODELS``) can run them too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from hanzo_cli.api import (
    CONFIG_MEDIA_TYPE,
    LOCAL_HOST,
    MANIFEST_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    HanzoError,
    ManifestName,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    PullOptions,
    Store,
    has_gguf_magic,
    manifest_model_info,
    manifest_model_infos,
    read_gguf_info,
)


class LocalProvider(Provider):
    name = "local"
    description = "GGUF files imported with hanzo model:import (hanzo's own store)"
    priority = 1
    can_pull: ClassVar[bool] = False

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def store(self) -> Store:
        return Store(self._root) if self._root else Store.default()

    def _name(self, name: str) -> ManifestName:
        parsed = ManifestName.parse(name, host=LOCAL_HOST)
        if parsed.host != LOCAL_HOST:
            raise HanzoError(f"local model names are [namespace/]model[:tag], not {name!r}")
        return parsed

    def accepts(self, name: str) -> bool:
        try:
            self._name(name)
        except HanzoError:
            return False
        return True

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        raise HanzoError("the local provider has nothing to pull; use: hanzo model:import PATH --name NAME")

    def list(self) -> Iterable[ModelInfo]:
        return manifest_model_infos(
            self.store, self.name, lambda host: host == LOCAL_HOST, default_host=LOCAL_HOST
        )

    def get(self, name: str) -> ModelInfo | None:
        try:
            mname = self._name(name)
        except HanzoError:
            return None
        store = self.store
        found = store.find_manifest(mname)
        if found is None:
            return None
        return manifest_model_info(store, self.name, found[0], found[1], default_host=LOCAL_HOST)

    def delete(self, name: str) -> ModelInfo:
        try:
            info = self.get(name)
        except HanzoError:
            info = None  # an unreadable manifest can still be deleted
        mname = self._name(name)
        if info is None and self.store.find_manifest(mname) is None:
            raise ModelNotFoundError(f"model {name!r} not found in local")
        self.store.delete(mname)
        return info or ModelInfo(self.name, mname.display(LOCAL_HOST))

    def import_file(self, path: Path, name: str) -> ModelInfo:
        """Copy a GGUF into the store as ``name`` (replacing an earlier import of that name)."""
        mname = self._name(name)
        if not has_gguf_magic(path):
            raise HanzoError(f"{path} is not a GGUF file (only GGUF models can be imported)")
        gguf = read_gguf_info(path)  # also rejects truncated/corrupt headers before copying
        store = self.store
        digest, size = store.add_blob_file(path)
        config = {
            "model_format": "gguf",
            "model_family": gguf.architecture or "",
            "model_families": [gguf.architecture] if gguf.architecture else [],
            "file_type": gguf.file_type or "",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest]},
        }
        config_digest, config_size = store.add_blob_bytes(json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MODEL_MEDIA_TYPE, "digest": digest, "size": size}],
        }
        store.write_manifest(mname, json.dumps(manifest, indent=2).encode())  # replaces an earlier import
        found = self.get(name)
        if found is None:  # pragma: no cover - we just wrote it
            raise HanzoError(f"import of {name!r} did not produce a model")
        return found
