"""``hanzo run MODEL [PROMPT]`` with a real LLM (Gemma 3 270M base): in-process generation streamed to
stdout equals llama-cpp-python's ``create_completion``; stdin when piped; ``--json``; an interactive
chat on a terminal (a pseudo-terminal here), which a model without a chat template refuses in one line."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from tests.helpers import assert_one_line_error, run_hanzo
from tests.node.conftest import PROMPT, TOKENS
from tests.node.test_generate import TEMPLATE

GREEDY = ("--temperature", "0", "--max-tokens", str(TOKENS))


def test_run_streams_the_completion(gemma_ref: str, reference_text: str) -> None:
    proc = run_hanzo("run", gemma_ref, PROMPT, *GREEDY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == reference_text + "\n"

    piped = run_hanzo("run", gemma_ref, *GREEDY, input=PROMPT)
    assert piped.returncode == 0 and piped.stdout == reference_text + "\n"

    whole = run_hanzo("run", gemma_ref, PROMPT, *GREEDY, "--json")
    assert whole.returncode == 0, whole.stderr
    body = json.loads(whole.stdout)
    assert body["response"] == reference_text and body["eval_count"] == TOKENS
    assert body["done_reason"] == "length" and body["prompt_eval_count"] == 6


def test_run_refuses_what_it_cannot_do(gemma_ref: str, minilm_ref: str) -> None:
    assert_one_line_error(run_hanzo("run", "local:no-such-model", "x"), "cannot pull")
    assert_one_line_error(run_hanzo("run", minilm_ref, "x"), "does not generate text")


def _interact(args: list[str], lines: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run hanzo on a pseudo-terminal, typing ``lines``; its exit code and everything it printed."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hanzo_cli", *args], stdin=child, stdout=child, stderr=child, close_fds=True
    )
    os.close(child)
    output = b""
    pending = list(lines)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                data = os.read(main, 4096)
            except OSError:
                break
            if not data:
                break
            output += data
        if pending and output.rstrip().endswith(b">>>"):
            os.write(main, (pending.pop(0) + "\n").encode())
            output += b"\n"
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=30)
    os.close(main)
    return process.returncode, output.decode("utf-8", "replace")


def test_run_chats_on_a_terminal(gemma_ref: str) -> None:
    code, output = _interact(["run", gemma_ref], [])
    assert code == 1 and "Error: " in output and "no chat template" in output

    chat = ["run", gemma_ref, "--template", TEMPLATE, "--temperature", "0", "--max-tokens", "8"]
    code, output = _interact(chat, ["Say hello.", "/bye"])
    assert code == 0, output
    assert output.count(">>>") == 2  # a reply, then the prompt again, then /bye
