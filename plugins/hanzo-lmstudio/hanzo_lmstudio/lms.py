"""``--via-lms``: let LM Studio's own CLI download a model (``lms get``).

The model is named by its Hugging Face URL, the form ``lms get`` documents for Hub repositories
(a bare ``org/repo`` goes through LM Studio's catalog search instead), with ``@quant`` when one
was asked for, and ``--yes`` so that it never waits for an answer on a terminal it does not have.

Its output is relayed to stderr as it comes (stdout is hanzo's, for ``--json``), each line marked
``lms:`` so that its own ``Error:`` lines are not mistaken for hanzo's.
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import subprocess

import click

from hanzo_cli.api import HanzoError
from hanzo_lmstudio.names import ModelName

HUB_URL = "https://huggingface.co"
PREFIX = "lms: "
_TAIL = 4096  # bytes of output kept for the error message


def lms_get(name: ModelName, *, quiet: bool) -> None:
    """Run ``lms get`` for ``name``; a HanzoError with its last words when it fails."""
    lms = shutil.which("lms")
    if lms is None:
        raise HanzoError(
            "--via-lms needs LM Studio's lms command on PATH (it is in ~/.lmstudio/bin); "
            "without --via-lms hanzo downloads the model itself"
        )
    ref = f"{HUB_URL}/{name.repo_id}" + (f"@{name.quant.lower()}" if name.quant else "")
    try:
        proc = subprocess.Popen(
            [lms, "get", ref, "--yes"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        raise HanzoError(f"cannot run {lms}: {exc.strerror}") from None
    tail = _relay(proc, quiet=quiet)
    if proc.returncode != 0:
        last = [line.strip() for line in re.split(r"[\r\n]+", tail) if line.strip()]
        detail = f": {last[-1]}" if last else ""
        raise HanzoError(f"lms get {ref} failed with exit code {proc.returncode}{detail}")


def _relay(proc: subprocess.Popen[bytes], *, quiet: bool) -> str:
    """Copy the child's output to stderr, prefixing every line (``\\r`` redraws of progress bars
    included); return the end of it. Waits for the child to exit."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    at_line_start = True
    with proc:
        while chunk := os.read(fd, 1 << 16):  # what is there, as soon as it is there
            text = decoder.decode(chunk)
            tail = (tail + text)[-_TAIL:]
            if quiet:
                continue
            out = []
            for piece in text.splitlines(keepends=True):
                out.append(PREFIX + piece if at_line_start else piece)
                at_line_start = piece.endswith(("\n", "\r"))
            click.echo("".join(out), err=True, nl=False)
    return tail
