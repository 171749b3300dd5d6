"""Timing: calls in rounds with the warm-up excluded, latency percentiles, peak RSS, and whole
processes timed side by side (for comparisons with programs that are not hanzo)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

#: Rounds per batch size: the median is reported, min and max show the spread.
DEFAULT_ROUNDS = 5


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB. Linux: VmHWM, because ru_maxrss survives
    fork+exec (a child would report its parent's peak)."""
    try:
        status = Path("/proc/self/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        scale = 2**20 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the nearest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def load_average() -> float | None:
    """The 1-minute load average, recorded beside numbers taken on a shared machine."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure_batches(
    call: Callable[[list[str]], object],
    items: Sequence[str],
    batch: int,
    seconds: float,
    *,
    rounds: int = DEFAULT_ROUNDS,
    tokens: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Throughput and latency of ``call`` on batches of ``batch`` items taken in turn from ``items``.

    One warm-up call, then ``rounds`` rounds of about ``seconds / rounds`` each (at least one call
    per round). ``items_per_s`` is the median round's rate, with the slowest and fastest rounds as the
    spread; ``p50_ms``/``p95_ms`` are per-call latencies over all rounds; ``tokens_per_s`` (when
    ``tokens`` maps each item to its token count) is the median round's rate in tokens.
    """
    if batch < 1 or not items:
        raise ValueError("measure_batches needs batch >= 1 and at least one item")
    cursor = 0

    def next_batch() -> list[str]:
        nonlocal cursor
        chunk = [items[(cursor + i) % len(items)] for i in range(batch)]
        cursor = (cursor + batch) % len(items)
        return chunk

    call(next_batch())  # warm-up: first-call allocations, page faults of mmapped weights
    budget = seconds / rounds
    latencies: list[float] = []
    rates: list[float] = []
    token_rates: list[float] = []
    for _ in range(rounds):
        done = done_tokens = 0
        start = time.perf_counter()
        elapsed = 0.0
        while done == 0 or elapsed < budget:
            chunk = next_batch()
            before = time.perf_counter()
            call(chunk)
            after = time.perf_counter()
            latencies.append(after - before)
            done += len(chunk)
            done_tokens += sum(tokens[t] for t in chunk) if tokens else 0
            elapsed = after - start
        rates.append(done / elapsed)
        token_rates.append(done_tokens / elapsed)
    result: dict[str, Any] = {
        "batch": batch,
        "items_per_s": statistics.median(rates),
        "items_per_s_min": min(rates),
        "items_per_s_max": max(rates),
        "tokens_per_s": statistics.median(token_rates) if tokens else None,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "calls": len(latencies),
        "rounds": rounds,
    }
    return result


class _Chunk(Protocol):
    """What a generator yields, as far as timing goes (:class:`hanzo_cli.runtimes.GenerationChunk`)."""

    prompt_tokens: int
    completion_tokens: int


def measure_generation(
    generate: Callable[[str], Iterable[_Chunk]],
    prompts: Sequence[str],
    seconds: float,
    *,
    rounds: int = DEFAULT_ROUNDS,
) -> dict[str, Any]:
    """Speed of ``generate(prompt)`` (a stream of chunks whose last one carries the token counts),
    prompts taken in turn, after one warm-up request.

    Per round: ``items_per_s`` = generated tokens ÷ request time, end to end (what a client waits
    for); ``tokens_per_s`` = prompt tokens ÷ time to the first chunk (prompt processing, plus one
    token). Medians over the rounds with their spread; ``p50_ms``/``p95_ms`` are times to the first
    chunk.
    """
    cursor = 0

    def one() -> tuple[float, float, int, int]:
        nonlocal cursor
        prompt = prompts[cursor % len(prompts)]
        cursor += 1
        start = time.perf_counter()
        first: float | None = None
        last: _Chunk | None = None
        for chunk in generate(prompt):
            first = first if first is not None else time.perf_counter()
            last = chunk
        end = time.perf_counter()
        if last is None or first is None:
            return end - start, end - start, 0, 0
        return first - start, end - start, last.prompt_tokens, last.completion_tokens

    one()  # warm-up
    budget = seconds / rounds
    firsts: list[float] = []
    prompt_rates: list[float] = []
    rates: list[float] = []
    for _ in range(rounds):
        waited = total = 0.0
        prompt_tokens = generated = 0
        start = time.perf_counter()
        while True:  # at least one request per round
            to_first, request, n_prompt, n_generated = one()
            firsts.append(to_first)
            waited, total = waited + to_first, total + request
            prompt_tokens, generated = prompt_tokens + n_prompt, generated + n_generated
            if time.perf_counter() - start >= budget:
                break
        prompt_rates.append(prompt_tokens / waited)
        rates.append(generated / total)
    return {
        "batch": 1,
        "items_per_s": statistics.median(rates),
        "items_per_s_min": min(rates),
        "items_per_s_max": max(rates),
        "tokens_per_s": statistics.median(prompt_rates),
        "p50_ms": percentile(firsts, 50) * 1000,
        "p95_ms": percentile(firsts, 95) * 1000,
        "calls": len(firsts),
        "rounds": rounds,
    }


def time_processes(
    commands: Mapping[str, Sequence[str]],
    rounds: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Each whole command's seconds per round: ``wall`` (what a user waits) and ``cpu`` (user + system
    time of the process and its children: the work done, which other processes on a shared machine
    disturb far less than the wall clock). Commands run in interleaved rounds (a, b, c, a, b, c, …)
    so that a busy machine slows them alike; a command that fails raises RuntimeError."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                list(argv), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True
            )
            times[name]["wall"].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            times[name]["cpu"].append(cpu)
            if done.returncode != 0:
                detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"{name} exited with {done.returncode}: {detail[0]}")
    return times
