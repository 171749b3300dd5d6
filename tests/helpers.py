"""Run the real ``hanzo`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_hanzo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``hanzo ARGS`` with the test's environment (plus ``env``); never raises on failure."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hanzo_cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
    )


def hanzo_json(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run a ``--json`` command that must succeed and return its parsed stdout."""
    proc = run_hanzo(*args, env=env)
    assert proc.returncode == 0, f"hanzo {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> None:
    """A failed command printed exactly one ``Error: …`` line (no traceback) with the fragments."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), (fragment, errors[0])
