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
    DEFAULT_PORT,
    ENV_API_KEY,
    SERVER_MODULE,
    SHUTDOWN_TIMEOUT,
)
from hanzo_cli.builtin.node.host import ModelHost
from hanzo_cli.builtin.node.state import is_loopback


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {SERVER_MODULE}",
        description=f"The built-in hanzo node (started by hanzo node:start). API key: ${ENV_API_KEY}.",
    )
    parser.add_argument("--model", required=True, help="pulled model to serve: [provider:]name")
    parser.add_argument("--name", help="name the APIs report (default: --model)")
    parser.add_argument("--host", default=DEFAULT_IP)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--runtime", help="runtime to load the model with")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api_key = os.environ.get(ENV_API_KEY) or None
    if not is_loopback(args.host) and not api_key:
        print(f"Error: binding {args.host} needs an API key in {ENV_API_KEY}", file=sys.stderr)
        return 2
    host = ModelHost(ref=args.model, name=args.name or args.model, runtime=args.runtime)
    config = uvicorn.Config(
        create_app(host, api_key),
        host=args.host,
        port=args.port,
        log_config=None,  # the root logger above: timestamps in the node's log
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    host.on_fatal = stop
    server.run()
    return 1 if host.error else 0


if __name__ == "__main__":
    sys.exit(main())
