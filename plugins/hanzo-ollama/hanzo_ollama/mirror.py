"""``model:mirror``: copy local models to a private registry, so a fleet (air-gapped or not) pulls
them from there with ``model:pull``.

Models in the Ollama layout (``$OLLAMA_MODELS`` or hanzo's store, and ``local:`` imports) are
pushed as they are. A GGUF of another provider (``hf:…``, ``lmstudio:…``) is wrapped in an
Ollama-format manifest: a config blob and the GGUF as the model layer. Each model goes to
``HOST/NAMESPACE/<model>:<tag>``; blobs the registry has are skipped, and blobs an earlier model
of the same run put there are mounted (cross-repository mount), not uploaded again.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

from hanzo_cli.api import (
    LOCAL_HOST,
    HanzoError,
    ManifestName,
    NotFoundError,
    UsageError,
    get_provider,
    parse_manifest,
)
from hanzo_ollama.provider import OllamaProvider
from hanzo_ollama.push import PushResult, PushSource, find_source, push_source

_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
_MODEL_LAYER = "application/vnd.ollama.image.model"
_NOT_NAME = re.compile(r"[^a-z0-9._-]+")


def mirror_models(refs: list[str], to: str, *, insecure: bool, every: bool) -> list[PushResult]:
    """Push each model ``refs`` names (or with ``every``, every Ollama-layout model on disk) to the
    registry namespace ``to`` (``HOST/NAMESPACE``)."""
    host, sep, namespace = to.strip().rstrip("/").partition("/")
    if not sep or not host or not namespace or "/" in namespace:
        raise UsageError(f"--to must be HOST/NAMESPACE (e.g. 127.0.0.1:5000/team), not {to!r}")
    provider = OllamaProvider()
    if every:
        refs = [*refs, *(f"ollama:{info.name}" for info in provider._disk_models())]
    if not refs:
        raise UsageError("name the models to mirror, or pass --all")
    mounts: dict[str, str] = {}
    results = []
    with tempfile.TemporaryDirectory(prefix="hanzo-mirror-") as scratch:
        for ref in dict.fromkeys(refs):  # each once, in the order given
            source, model, tag = _source(ref, provider, Path(scratch))
            dest = f"{host}/{namespace}/{model}:{tag}"
            results.append(push_source(source, dest, insecure=insecure, mounts=mounts))
    return results


def _source(ref: str, provider: OllamaProvider, scratch: Path) -> tuple[PushSource, str, str]:
    """The model ``ref`` names, with the model name and tag it gets on the mirror."""
    prefix, sep, rest = ref.partition(":")
    other = sep and prefix.lower() not in ("ollama", LOCAL_HOST) and not any(c in prefix for c in "/.")
    if other:
        try:
            found = get_provider(prefix.lower())
        except HanzoError:
            found = None  # not a provider's name: a model name with a tag ("qwen:0.5b")
        if found is not None and found.name not in ("ollama", LOCAL_HOST):
            return _wrap_gguf(found.name, rest, scratch)
    source = find_source(ref, provider)
    name = ManifestName.parse(source.label)
    return source, _clean(name.model), _clean(name.tag)


def _wrap_gguf(provider_name: str, name: str, scratch: Path) -> tuple[PushSource, str, str]:
    """A GGUF of another provider as an Ollama-format model: config blob + model layer."""
    model = get_provider(provider_name).get(name)
    if model is None:
        raise NotFoundError(f"model {provider_name}:{name} not found; pull it first")
    path = model.path
    if path is None or not path.is_file() or path.suffix.lower() != ".gguf":
        raise HanzoError(f"{model.ref} is not a single GGUF file; only GGUF models can be mirrored")
    digest = next((f.digest for f in model.files if f.path == path and f.digest), None)
    digest = _sha256_digest(digest) if digest else _hash(path)
    config = json.dumps(
        {"model_format": "gguf", "file_type": "", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    config_bytes = config.encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config_path = scratch / config_digest.replace(":", "-")
    config_path.write_bytes(config_bytes)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _DOCKER_MANIFEST,
            "config": {"mediaType": _DOCKER_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": _MODEL_LAYER, "digest": digest, "size": path.stat().st_size}],
        },
        separators=(",", ":"),
    ).encode()
    source = PushSource(
        model.ref, parse_manifest(raw), {config_digest: config_path, digest: path}, path.parent
    )
    repo, _, tag = model.name.partition(":")
    return source, _clean(repo.rsplit("/", 1)[-1]), _clean(tag or "latest")


def _sha256_digest(value: str) -> str:
    return value if value.startswith("sha256:") else f"sha256:{value}"


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _clean(text: str) -> str:
    """A name or tag as registries take it: lower case, [a-z0-9._-]."""
    cleaned = _NOT_NAME.sub("-", text.lower()).strip("-.") or "latest"
    return cleaned[:128]
