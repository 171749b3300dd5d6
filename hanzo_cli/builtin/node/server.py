"""The built-in hanzo node's process: ``python -m hanzo_cli.builtin.node.server --model REF …``.

``hanzo node:start`` runs it; the CLI itself never imports it (starlette and uvicorn are the ``node``
extra). The API key comes from the environment (``HANZO_NODE_API_KEY``), never the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from hanzo_cli.builtin.node.app import create_app
from hanzo_cli.builtin.node.constants import (
    DEFAULT_IP,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_LOADED,
    DEFAULT_PARALLEL,
    DEFAULT_PORT,
    ENV_API_KEY,
    MAX_BODY_BYTES,
    MAX_INPUTS,
    SERVER_MODULE,
    SHUTDOWN_TIMEOUT,
)
from hanzo_cli.builtin.node.keepalive import parse_cli_keep_alive
from hanzo_cli.builtin.node.pool import ModelPool, PoolSettings
from hanzo_cli.builtin.node.state import is_loopback


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {SERVER_MODULE}",
        description=f"The built-in hanzo node (started by hanzo node:start). API key: ${ENV_API_KEY}.",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="pulled model to load at start: [provider:]name (repeatable)",
    )
    parser.add_argument("--name", action="append", default=[], help="name the APIs report for each --model")
    parser.add_argument("--host", default=DEFAULT_IP)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--runtime", help="runtime to load models with")
    parser.add_argument(
        "--max-loaded", type=int, default=DEFAULT_MAX_LOADED, help="models loaded at once (0: any)"
    )
    parser.add_argument(
        "--keep-alive", default=str(DEFAULT_KEEP_ALIVE), help="seconds or a duration (5m); <0 forever"
    )
    parser.add_argument(
        "--parallel", type=int, default=DEFAULT_PARALLEL, help="generations each model decodes at once"
    )
    parser.add_argument("--max-memory", type=int, default=0, help="bytes of models loaded at once (0: any)")
    parser.add_argument(
        "--pull-missing", action="store_true", help="pull a requested model that is not local"
    )
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES, help="largest request body, bytes")
    parser.add_argument("--max-inputs", type=int, default=MAX_INPUTS, help="most inputs per request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api_key = os.environ.get(ENV_API_KEY) or None
    if not is_loopback(args.host) and not api_key:
        print(f"Error: binding {args.host} needs an API key in {ENV_API_KEY}", file=sys.stderr)
        return 2
    try:
        keep_alive = parse_cli_keep_alive(args.keep_alive)
    except ValueError as exc:
        print(f"Error: --keep-alive: {exc}", file=sys.stderr)
        return 2
    names = args.name + args.model[len(args.name) :]
    if args.parallel < 1:
        print("Error: --parallel must be at least 1", file=sys.stderr)
        return 2
    settings = PoolSettings(
        args.max_loaded, keep_alive, args.pull_missing, args.runtime, args.max_memory, args.parallel
    )
    pool = ModelPool(settings, list(zip(args.model, names, strict=True)))
    config = uvicorn.Config(
        create_app(pool, api_key, args.max_body, args.max_inputs),
        host=args.host,
        port=args.port,
        log_config=None,  # the root logger above: timestamps in the node's log
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
    )
    server = uvicorn.Server(config)
    failed: list[str] = []

    def fatal(message: str) -> None:
        print(f"Error: {message}", file=sys.stderr, flush=True)
        failed.append(message)
        server.should_exit = True

    pool.on_fatal = fatal
    server.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
