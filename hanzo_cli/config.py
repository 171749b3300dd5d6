"""Where hanzo keeps its state, and its small settings file.

``HANZO_HOME`` moves everything (store, config, node state, logs) under one folder; without it the
platform's conventional folders are used (platformdirs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError

APP = "hanzo"

#: Settings ``hanzo config:set`` accepts, with what they mean. ``HANZO_<KEY>`` (dots become
#: underscores, upper case) overrides each one, e.g. ``HANZO_EMBEDDING_MODEL``.
SETTINGS: dict[str, str] = {
    "embedding.model": "default embedding model for embedding:test and node:start",
    "reranker.model": "default reranker model for rerank",
    "provider.default": "provider tried first for bare model names",
    "runtime.default": "runtime used when several can run a model",
}


def _home() -> Path | None:
    value = os.environ.get("HANZO_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    home = _home()
    if home:
        return home
    import platformdirs

    return platformdirs.user_data_path(APP)


def config_dir() -> Path:
    home = _home()
    if home:
        return home
    import platformdirs

    return platformdirs.user_config_path(APP)


def state_dir() -> Path:
    home = _home()
    if home:
        return home / "state"
    import platformdirs

    return platformdirs.user_state_path(APP)


def log_dir() -> Path:
    home = _home()
    if home:
        return home / "logs"
    import platformdirs

    return platformdirs.user_log_path(APP)


def store_dir() -> Path:
    """hanzo's own model store (Ollama's on-disk layout)."""
    return data_dir() / "models"


def config_path() -> Path:
    return config_dir() / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HanzoError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HanzoError(f"config file {path} is not a JSON object")
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
        raise HanzoError(f"unknown setting {key!r} (known: {known})")
    from hanzo_cli.store import atomic_write

    config = load_config()
    if value is None:
        config.pop(key, None)
    else:
        config[key] = value
    atomic_write(config_path(), (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
