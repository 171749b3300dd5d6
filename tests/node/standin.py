"""A stand-in for the ``hanzod`` binary (the real one is not available here): a Python script that
records its environment and serves hanzod's ``/v2/health_check`` on ``NODE_API_IP:NODE_API_PORT``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

record = os.environ["STANDIN_RECORD"]
with open(record, "w") as f:
    json.dump({"env": dict(os.environ), "argv": sys.argv}, f)
if os.environ.get("STANDIN_FAIL"):
    print("Error: identity secret key is missing", file=sys.stderr)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/v2/health_check":
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", "node_name": "@@stand-in", "version": "0.0.0-test", "ready": True})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def terminated(signum, frame):
    with open(record + ".stopped", "w") as f:
        f.write(str(signum))
    sys.exit(0)


signal.signal(signal.SIGTERM, terminated)
print("stand-in hanzod listening", flush=True)
HTTPServer((os.environ["NODE_API_IP"], int(os.environ["NODE_API_PORT"])), Handler).serve_forever()
"""


def write_standin(folder: Path) -> Path:
    """An executable ``hanzod`` in ``folder``; set ``STANDIN_RECORD`` to where it records its environment."""
    path = folder / "hanzod"
    path.write_text(f"#!{sys.executable}\n{SCRIPT}")
    path.chmod(0o755)
    return path


def recorded(record: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(record.read_text())
    return data
