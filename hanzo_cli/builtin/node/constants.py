"""The node's defaults and the environment variables it reads, in one place.

Imported by ``node:start --help``: nothing here may import more than the standard library.
"""

from __future__ import annotations

# Where the node listens.
DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 9452
#: hanzod's API port when ``NODE_API_PORT`` is unset (hanzod's own default): its health check answers there.
HANZOD_API_PORT = 3690
HEALTH_PATH = "/v2/health_check"

# Environment variables.
ENV_API_KEY = "HANZO_NODE_API_KEY"  # the Bearer key clients must send (never on the command line)
ENV_HANZOD_BIN = "HANZOD_BIN"  # the hanzod binary (else ``hanzod`` on PATH)
ENV_HANZOD_API_IP = "NODE_API_IP"  # hanzod's own variables that hanzo reads too
ENV_HANZOD_API_PORT = "NODE_API_PORT"
ENV_HANZOD_API_KEY = "API_V2_KEY"

#: The built-in node's server, run as ``python -m SERVER_MODULE``.
SERVER_MODULE = "hanzo_cli.builtin.node.server"

# Timeouts, seconds.
#: ``node:start`` waits this long for the health check to say ready (loading a large model takes a while).
START_TIMEOUT = 300.0
#: ``node:stop`` waits this long after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0
#: Uvicorn's graceful shutdown.
SHUTDOWN_TIMEOUT = 5

# Request handling in the built-in node.
#: How long the first of several concurrent embedding requests waits for the others to join its batch.
BATCH_WINDOW = 0.002
#: Texts merged into one model call (a single larger request still goes in one call). Kept small so
#: that, under load, one batch runs while the responses of the previous one are encoded and sent.
MAX_BATCH_TEXTS = 32
#: GOMP_SPINCOUNT of embedding workers: how long llama.cpp's OpenMP threads spin at a barrier before
#: they sleep (~0.1 ms; libgomp's default is milliseconds, see ``host.worker_environment``).
EMBED_OMP_SPIN = 2000
#: Largest request body accepted (413 above it); ``--max-body`` changes it.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Generations one model decodes at once (Ollama's OLLAMA_NUM_PARALLEL); each gets a full context.
DEFAULT_PARALLEL = 4
#: Models loaded at once before the least recently used idle one is unloaded (Ollama's default on CPU).
DEFAULT_MAX_LOADED = 3
#: Seconds an on-demand model stays loaded after its last request (Ollama's default, 5m).
DEFAULT_KEEP_ALIVE = 300.0
#: How often idle models are checked for expiry, seconds.
REAP_INTERVAL = 1.0
#: The Ollama version whose API the node answers like (``/api/version``): clients gate features on it.
OLLAMA_API_VERSION = "0.12.6"
#: Most inputs one embedding request may carry (400 above it); ``--max-inputs`` changes it.
MAX_INPUTS = 2048
