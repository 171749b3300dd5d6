"""Every folder hanzo owns and every environment variable the core reads, in one place.

Values are read when asked for, not at import, so a test (or a long-lived node) that changes the
environment sees the change. Plugins keep their own source's variables (``OLLAMA_HOST``,
``HF_HOME``, ``LMSTUDIO_HOME``) in their own ``constants``-like module; the core never reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "hanzo"

# Environment variables the core reads. Settings in config.json have an ``HANZO_<KEY>`` override too
# (see :func:`hanzo_cli.config.env_name`).
ENV_HOME = "HANZO_HOME"  # moves everything hanzo owns under one folder
ENV_PLUGINS = "HANZO_PLUGINS"  # "a,b": load only these external plugins; "": none
ENV_DEBUG = "HANZO_DEBUG"  # show tracebacks of unexpected errors
ENV_PROGRESS = "HANZO_PROGRESS"  # 1 forces progress bars, 0 hides them
ENV_DOWNLOAD_CONNECTIONS = "HANZO_DOWNLOAD_CONNECTIONS"  # cap on parallel connections per file
ENV_DOWNLOAD_BACKOFF = "HANZO_DOWNLOAD_BACKOFF"  # base of the retry backoff, seconds (tests shorten it)
# Read as httpx reads them, for the TLS context every client shares (hanzo_cli.tls).
ENV_SSL_CERT_FILE = "SSL_CERT_FILE"  # a CA bundle to verify servers with, instead of certifi's
ENV_SSL_CERT_DIR = "SSL_CERT_DIR"  # a directory of CA certificates, instead of certifi's

# The model formats runtimes read: a GGUF file, or a Hugging Face folder of safetensors.
GGUF_FORMAT = "gguf"
SAFETENSORS_FORMAT = "safetensors"
MODEL_FORMATS = (GGUF_FORMAT, SAFETENSORS_FORMAT)

_FALSE = ("", "0", "false", "no", "off")


def env(name: str) -> str | None:
    """The variable's value stripped of surrounding whitespace, or None when unset."""
    value = os.environ.get(name)
    return value.strip() if value is not None else None


def env_flag(name: str) -> bool:
    """Whether a yes/no variable is set to something other than empty/0/false/no/off."""
    return (os.environ.get(name) or "").strip().lower() not in _FALSE


def home() -> Path | None:
    """``$HANZO_HOME``, when set."""
    value = os.environ.get(ENV_HOME)
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Models and other data hanzo keeps (``$HANZO_HOME``, else the platform's data folder)."""
    root = home()
    if root:
        return root
    import platformdirs

    return platformdirs.user_data_path(APP)


def config_dir() -> Path:
    root = home()
    if root:
        return root
    import platformdirs

    return platformdirs.user_config_path(APP)


def state_dir() -> Path:
    """Runtime state: the node's pidfile and state."""
    root = home()
    if root:
        return root / "state"
    import platformdirs

    return platformdirs.user_state_path(APP)


def log_dir() -> Path:
    root = home()
    if root:
        return root / "logs"
    import platformdirs

    return platformdirs.user_log_path(APP)


def cache_dir() -> Path:
    """Things hanzo can rebuild (the entry-point scan)."""
    root = home()
    if root:
        return root / "cache"
    import platformdirs

    return platformdirs.user_cache_path(APP)


def store_dir() -> Path:
    """hanzo's own model store (Ollama's on-disk layout)."""
    return data_dir() / "models"


def config_path() -> Path:
    return config_dir() / "config.json"
