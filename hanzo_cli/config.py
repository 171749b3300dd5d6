"""hanzo's small settings file (``config.json``) and its ``HANZO_<KEY>`` environment overrides."""

from __future__ import annotations

import json
import os
from typing import Any

from hanzo_cli.constants import config_path
from hanzo_cli.errors import ConfigError
from hanzo_cli.fsutil import atomic_write

#: Settings ``hanzo config:set`` accepts, with what they mean. ``HANZO_<KEY>`` (dots become
#: underscores, upper case) overrides each one, e.g. ``HANZO_EMBEDDING_MODEL``.
SETTINGS: dict[str, str] = {
    "embedding.model": "default embedding model for embedding:test and node:start",
    "reranker.model": "default reranker model for rerank",
    "provider.default": "provider tried first for bare model names",
    "runtime.default": "runtime used when several can run a model",
}


def register_setting(key: str, description: str) -> None:
    """Let a plugin add a setting of its own (``config:set`` refuses unknown keys)."""
    SETTINGS.setdefault(key, description)


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} is not a JSON object")
    return data


def env_name(key: str) -> str:
    return "HANZO_" + key.upper().replace(".", "_").replace("-", "_")


def get_setting(key: str) -> str | None:
    """The setting's value: environment first, then the config file, else None."""
    env = os.environ.get(env_name(key))
    if env:
        return env
    value = load_config().get(key)
    return str(value) if value is not None else None


def set_setting(key: str, value: str | None) -> None:
    """Store (or with None remove) a setting, atomically."""
    if key not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise ConfigError(f"unknown setting {key!r} (known: {known})")
    config = load_config()
    if value is None:
        config.pop(key, None)
    else:
        config[key] = value
    atomic_write(config_path(), (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
