"""The public plugin API of hanzo-cli: everything a plugin may import, and nothing else.

A plugin (first-party or not) imports from this module only::

    from hanzo_cli.api import Provider, ModelInfo, PullOptions, download, hookimpl

Every other ``hanzo_cli`` module is private: it may change in any release. What is listed in
``__all__`` here changes only with :data:`API_VERSION`: a new name raises the minor number, a removed
or changed one the major number. Plugins declare the ``hanzo-cli`` versions they work with in their
own requirements (``hanzo-cli>=1.0,<2``); the test suite checks that no first-party plugin imports
anything else.

What one plugin offers another goes through an interface declared here, never through the other
plugin's modules: :class:`FileSource` (resolve repository files and fetch them verified, found with
:func:`file_source`) and :meth:`Provider.serving_url` (a provider's own server that can serve a model).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use
    from hanzo_cli import (
        __version__,
    )
    from hanzo_cli.catalog import (
        CatalogEntry,
    )
    from hanzo_cli.config import (
        get_setting,
        register_setting,
    )
    from hanzo_cli.constants import (
        cache_dir,
        data_dir,
        env,
        env_flag,
        log_dir,
        state_dir,
        store_dir,
    )
    from hanzo_cli.download import (
        DownloadResult,
        download,
        side_files,
    )
    from hanzo_cli.errors import (
        AuthenticationError,
        ConfigError,
        DiskFullError,
        DownloadError,
        HanzoError,
        IntegrityError,
        InvalidReferenceError,
        MissingPluginError,
        ModelFileError,
        ModelNotFoundError,
        NotFoundError,
        PluginError,
        RemoteFileNotFoundError,
        RuntimeFailure,
        UsageError,
    )
    from hanzo_cli.fsutil import (
        atomic_write,
        fsync_dir,
        lock_is_held,
        mtime,
        remove_unless_locked,
    )
    from hanzo_cli.gguf_info import (
        GGUFInfo,
        has_gguf_magic,
        read_gguf_info,
    )
    from hanzo_cli.ggufnames import (
        QUANT_PREFERENCE,
        GGUFModel,
        available,
        default_model,
        gguf_models,
        is_gguf_name,
        is_mmproj,
        quant_of,
    )
    from hanzo_cli.hookspecs import (
        hookimpl,
    )
    from hanzo_cli.manifest_models import (
        manifest_model_info,
        manifest_model_infos,
    )
    from hanzo_cli.models import (
        file_source,
        get_provider,
    )
    from hanzo_cli.onecopy import (
        link_verified,
    )
    from hanzo_cli.output import (
        NullBar,
        ProgressBar,
        ProgressGroup,
        echo_json,
        human_size,
        info,
        progress_bar,
        set_quiet,
        warn,
    )
    from hanzo_cli.providers import (
        FileSource,
        ModelFile,
        ModelInfo,
        Provider,
        PullOption,
        PullOptions,
        Reclaimable,
        RemoteFile,
        RemoteVersion,
        Resolved,
    )
    from hanzo_cli.refs import (
        ModelRef,
    )
    from hanzo_cli.runtimes import (
        TASKS,
        Embedder,
        GenerationChunk,
        Generator,
        Reranker,
        Runtime,
        SamplingOptions,
    )
    from hanzo_cli.safetensors_info import (
        SafetensorsInfo,
        model_format,
        read_safetensors_info,
    )
    from hanzo_cli.store import (
        CONFIG_MEDIA_TYPE,
        DEFAULT_HOST,
        DEFAULT_NAMESPACE,
        DEFAULT_TAG,
        LOCAL_HOST,
        MANIFEST_MEDIA_TYPE,
        MAX_MANIFEST_BYTES,
        MODEL_MEDIA_TYPE,
        OLLAMA_LAYER_PREFIX,
        Layer,
        Manifest,
        ManifestName,
        Store,
        digest_hex,
        parse_manifest,
    )
    from hanzo_cli.tls import (
        ssl_context,
    )
    from hanzo_cli.verified import (
        file_digests,
        record_verified,
        set_aside,
        verify_existing,
    )

#: The version of this API (``major.minor``): see the module docstring for what changes it.
API_VERSION = "1.1"

# Where each public name lives. Names are imported when first used (PEP 562), so a plugin's module
# that imports only ``hookimpl`` costs hanzo's start-up nothing more.
_SOURCES: dict[str, str] = {
    "AuthenticationError": "hanzo_cli.errors",
    "CONFIG_MEDIA_TYPE": "hanzo_cli.store",
    "CatalogEntry": "hanzo_cli.catalog",
    "ConfigError": "hanzo_cli.errors",
    "DEFAULT_HOST": "hanzo_cli.store",
    "DEFAULT_NAMESPACE": "hanzo_cli.store",
    "DEFAULT_TAG": "hanzo_cli.store",
    "DiskFullError": "hanzo_cli.errors",
    "DownloadError": "hanzo_cli.errors",
    "DownloadResult": "hanzo_cli.download",
    "Embedder": "hanzo_cli.runtimes",
    "GenerationChunk": "hanzo_cli.runtimes",
    "Generator": "hanzo_cli.runtimes",
    "FileSource": "hanzo_cli.providers",
    "GGUFInfo": "hanzo_cli.gguf_info",
    "SafetensorsInfo": "hanzo_cli.safetensors_info",
    "model_format": "hanzo_cli.safetensors_info",
    "read_safetensors_info": "hanzo_cli.safetensors_info",
    "GGUFModel": "hanzo_cli.ggufnames",
    "HanzoError": "hanzo_cli.errors",
    "IntegrityError": "hanzo_cli.errors",
    "InvalidReferenceError": "hanzo_cli.errors",
    "LOCAL_HOST": "hanzo_cli.store",
    "Layer": "hanzo_cli.store",
    "MANIFEST_MEDIA_TYPE": "hanzo_cli.store",
    "MAX_MANIFEST_BYTES": "hanzo_cli.store",
    "MODEL_MEDIA_TYPE": "hanzo_cli.store",
    "Manifest": "hanzo_cli.store",
    "ManifestName": "hanzo_cli.store",
    "MissingPluginError": "hanzo_cli.errors",
    "ModelFile": "hanzo_cli.providers",
    "ModelFileError": "hanzo_cli.errors",
    "ModelInfo": "hanzo_cli.providers",
    "ModelNotFoundError": "hanzo_cli.errors",
    "ModelRef": "hanzo_cli.refs",
    "NotFoundError": "hanzo_cli.errors",
    "NullBar": "hanzo_cli.output",
    "OLLAMA_LAYER_PREFIX": "hanzo_cli.store",
    "PluginError": "hanzo_cli.errors",
    "ProgressBar": "hanzo_cli.output",
    "ProgressGroup": "hanzo_cli.output",
    "Provider": "hanzo_cli.providers",
    "PullOption": "hanzo_cli.providers",
    "PullOptions": "hanzo_cli.providers",
    "QUANT_PREFERENCE": "hanzo_cli.ggufnames",
    "Reclaimable": "hanzo_cli.providers",
    "RemoteFile": "hanzo_cli.providers",
    "RemoteFileNotFoundError": "hanzo_cli.errors",
    "RemoteVersion": "hanzo_cli.providers",
    "Reranker": "hanzo_cli.runtimes",
    "Resolved": "hanzo_cli.providers",
    "Runtime": "hanzo_cli.runtimes",
    "SamplingOptions": "hanzo_cli.runtimes",
    "RuntimeFailure": "hanzo_cli.errors",
    "Store": "hanzo_cli.store",
    "TASKS": "hanzo_cli.runtimes",
    "UsageError": "hanzo_cli.errors",
    "__version__": "hanzo_cli",
    "atomic_write": "hanzo_cli.fsutil",
    "lock_is_held": "hanzo_cli.fsutil",
    "remove_unless_locked": "hanzo_cli.fsutil",
    "available": "hanzo_cli.ggufnames",
    "cache_dir": "hanzo_cli.constants",
    "data_dir": "hanzo_cli.constants",
    "default_model": "hanzo_cli.ggufnames",
    "digest_hex": "hanzo_cli.store",
    "download": "hanzo_cli.download",
    "echo_json": "hanzo_cli.output",
    "env": "hanzo_cli.constants",
    "env_flag": "hanzo_cli.constants",
    "file_source": "hanzo_cli.models",
    "fsync_dir": "hanzo_cli.fsutil",
    "get_provider": "hanzo_cli.models",
    "get_setting": "hanzo_cli.config",
    "file_digests": "hanzo_cli.verified",
    "gguf_models": "hanzo_cli.ggufnames",
    "has_gguf_magic": "hanzo_cli.gguf_info",
    "hookimpl": "hanzo_cli.hookspecs",
    "human_size": "hanzo_cli.output",
    "info": "hanzo_cli.output",
    "is_gguf_name": "hanzo_cli.ggufnames",
    "is_mmproj": "hanzo_cli.ggufnames",
    "link_verified": "hanzo_cli.onecopy",
    "log_dir": "hanzo_cli.constants",
    "manifest_model_info": "hanzo_cli.manifest_models",
    "manifest_model_infos": "hanzo_cli.manifest_models",
    "mtime": "hanzo_cli.fsutil",
    "parse_manifest": "hanzo_cli.store",
    "progress_bar": "hanzo_cli.output",
    "quant_of": "hanzo_cli.ggufnames",
    "read_gguf_info": "hanzo_cli.gguf_info",
    "record_verified": "hanzo_cli.verified",
    "register_setting": "hanzo_cli.config",
    "set_aside": "hanzo_cli.verified",
    "set_quiet": "hanzo_cli.output",
    "side_files": "hanzo_cli.download",
    "ssl_context": "hanzo_cli.tls",
    "state_dir": "hanzo_cli.constants",
    "store_dir": "hanzo_cli.constants",
    "verify_existing": "hanzo_cli.verified",
    "warn": "hanzo_cli.output",
}

__all__ = [
    "API_VERSION",
    "CONFIG_MEDIA_TYPE",
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG",
    "LOCAL_HOST",
    "MANIFEST_MEDIA_TYPE",
    "MAX_MANIFEST_BYTES",
    "MODEL_MEDIA_TYPE",
    "OLLAMA_LAYER_PREFIX",
    "QUANT_PREFERENCE",
    "TASKS",
    "AuthenticationError",
    "CatalogEntry",
    "ConfigError",
    "DiskFullError",
    "DownloadError",
    "DownloadResult",
    "Embedder",
    "FileSource",
    "GGUFInfo",
    "GGUFModel",
    "GenerationChunk",
    "Generator",
    "HanzoError",
    "IntegrityError",
    "InvalidReferenceError",
    "Layer",
    "Manifest",
    "ManifestName",
    "MissingPluginError",
    "ModelFile",
    "ModelFileError",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelRef",
    "NotFoundError",
    "NullBar",
    "PluginError",
    "ProgressBar",
    "ProgressGroup",
    "Provider",
    "PullOption",
    "PullOptions",
    "Reclaimable",
    "RemoteFile",
    "RemoteFileNotFoundError",
    "RemoteVersion",
    "Reranker",
    "Resolved",
    "Runtime",
    "RuntimeFailure",
    "SafetensorsInfo",
    "SamplingOptions",
    "Store",
    "UsageError",
    "__version__",
    "atomic_write",
    "available",
    "cache_dir",
    "data_dir",
    "default_model",
    "digest_hex",
    "download",
    "echo_json",
    "env",
    "env_flag",
    "file_digests",
    "file_source",
    "fsync_dir",
    "get_provider",
    "get_setting",
    "gguf_models",
    "has_gguf_magic",
    "hookimpl",
    "human_size",
    "info",
    "is_gguf_name",
    "is_mmproj",
    "link_verified",
    "lock_is_held",
    "log_dir",
    "manifest_model_info",
    "manifest_model_infos",
    "model_format",
    "mtime",
    "parse_manifest",
    "progress_bar",
    "quant_of",
    "read_gguf_info",
    "read_safetensors_info",
    "record_verified",
    "register_setting",
    "remove_unless_locked",
    "set_aside",
    "set_quiet",
    "side_files",
    "ssl_context",
    "state_dir",
    "store_dir",
    "verify_existing",
    "warn",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'hanzo_cli.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return list(__all__)
