"""``model:bench``: speed, memory and quality of local models side by side, kept for ``--history``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from hanzo_cli.hookspecs import hookimpl


@click.command("model:bench")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option(
    "--runtime", "-r", "runtimes", multiple=True, metavar="NAME", help="Runtime(s) to compare (repeatable)."
)
@click.option("--batch", default="1,8,32", show_default=True, metavar="SIZES", help="Batch sizes to time.")
@click.option("--texts", "texts_file", type=Path, metavar="FILE", help="Texts to time, one per line.")
@click.option(
    "--eval", "eval_file", type=Path, metavar="FILE.jsonl", help='Your own {"query", "passage"} pairs.'
)
@click.option("--seconds", default="6", show_default=True, metavar="N", help="Timing budget per model.")
@click.option("--rounds", default=5, type=int, show_default=True, metavar="N", help="Rounds per batch size.")
@click.option("--plot", "plot_file", type=Path, metavar="FILE.svg|.png", help="Draw quality against speed.")
@click.option(
    "--history", "show_history", is_flag=True, help="Show how the models' numbers moved between runs."
)
@click.option("--no-save", is_flag=True, help="Do not keep this run for --history.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_cmd(
    refs: tuple[str, ...],
    runtimes: tuple[str, ...],
    batch: str,
    texts_file: Path | None,
    eval_file: Path | None,
    seconds: str,
    rounds: int,
    plot_file: Path | None,
    show_history: bool,
    no_save: bool,
    as_json: bool,
) -> None:
    """Benchmark local models: load time, first-request latency, throughput and p50/p95 latency per
    batch size, peak memory, and retrieval quality (recall@1, MRR@10), one row per model x runtime.

    Each row runs in its own process (its memory is its own; a crash only fails its row). Quality is
    scored on hanzo's built-in retrieval set (130 query/passage pairs over 13 topics) or --eval FILE;
    several quantisations of one model are also compared to the most precise one (mean cosine).
    """
    from hanzo_cli.bench import history, runner, texts
    from hanzo_cli.bench.plot import check_plot_path, write_plot
    from hanzo_cli.errors import UsageError
    from hanzo_cli.output import echo_json, info

    if show_history:
        _show_history(refs, as_json)
        return
    if not refs:
        raise UsageError("give at least one model REF to benchmark (or --history)")
    batches = runner.check_batches(batch)
    budget = _seconds(seconds)
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1, not {rounds}")
    pairs = texts.read_pairs(eval_file) if eval_file else texts.builtin_pairs()
    inputs = texts.read_texts(texts_file) if texts_file else list(dict.fromkeys(p.passage for p in pairs))
    if plot_file is not None:
        check_plot_path(plot_file)
    targets = runner.plan(refs, runtimes)
    count = iter(range(1, len(targets) + 1))

    def progress(row: dict[str, Any]) -> None:
        info(f"[{next(count)}/{len(targets)}] {row['model']} ({row['runtime']}): {_status(row)}")

    settings = {
        "texts": str(texts_file) if texts_file else texts.BUILTIN_SET,
        "eval": str(eval_file) if eval_file else texts.BUILTIN_SET,
        "pairs": len(pairs),
    }
    record = runner.run(
        targets,
        texts=inputs,
        pairs=pairs,
        batches=batches,
        seconds=budget,
        rounds=rounds,
        settings=settings,
        on_row=progress,
    )
    saved = None if no_save else history.save_run(record)
    if plot_file is not None:
        write_plot(plot_file, record["rows"], f"hanzo model:bench {record['created'][:16]}")
    if as_json:
        echo_json({**record, "saved": str(saved) if saved else None})
        return
    for line in render(record):
        click.echo(line)
    if saved:
        click.echo(f"saved: {saved}")
    if plot_file is not None:
        click.echo(f"plot: {plot_file}")


def _seconds(value: str) -> float:
    from hanzo_cli.errors import UsageError

    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"--seconds takes a positive number, not {value!r}")
    return seconds


def _status(row: dict[str, Any]) -> str:
    if row.get("status") == "ok":
        return "done"
    return f"{row.get('status')}: {row.get('error')}"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


#: What a row's rate counts: texts embedded, documents scored, tokens generated.
UNITS = {"embed": "texts", "rerank": "pairs", "generate": "tok gen"}


def _rate(row: dict[str, Any], value: float) -> str:
    return f"{value:.1f} {UNITS.get(row['task'], 'items')}"


def render(record: dict[str, Any]) -> list[str]:
    """The run as tables: one row per model x runtime (fastest first), then each batch size."""
    from hanzo_cli.bench.runner import best_rate
    from hanzo_cli.bench.worker import GENERATED_TOKENS

    table: list[tuple[str, ...]] = [
        (
            *("", "MODEL", "RUNTIME", "QUANT", "LOAD s", "FIRST ms", "BEST RATE/s @BATCH", "SPREAD"),
            *("TOK/s", "P50 ms", "P95 ms", "RSS MB", "DIM", "R@1", "MRR@10", "QUANT COS"),
        )
    ]
    detail: list[tuple[str, ...]] = [
        ("MODEL", "RUNTIME", "BATCH", "RATE/s", "MIN-MAX", "TOK/s", "P50 ms", "P95 ms")
    ]
    notes: list[str] = []
    for row in record["rows"]:
        name, runtime = row["model"], row.get("runtime") or "-"
        if row.get("status") != "ok":
            table.append(("!", name, runtime, row.get("file_type") or "-", row["status"], *[""] * 11))
            notes.append(f"! {name} ({runtime}) {row['status']}: {row.get('error')}")
            continue
        best = max(row["batches"], key=lambda b: b["items_per_s"])
        quality = row.get("quality") or {}
        table.append(
            (
                "*" if row.get("pareto") else "",
                name,
                runtime,
                row.get("file_type") or "-",
                f"{row['load_s']:.2f}",
                f"{row['first_ms']:.1f}",
                f"{_rate(row, best_rate(row))} @{best['batch']}",
                f"{best['items_per_s_min']:.0f}-{best['items_per_s_max']:.0f}",
                _num(best["tokens_per_s"], ".0f"),
                f"{best['p50_ms']:.1f}",
                f"{best['p95_ms']:.1f}",
                f"{row['peak_rss_mb']:.0f}",
                str(row.get("dimensions") or "-"),
                _num(quality.get("recall_at_1"), ".3f"),
                _num(quality.get("mrr_at_10"), ".3f"),
                _num(row.get("quant_cosine"), ".4f"),
            )
        )
        for b in row["batches"]:
            detail.append(
                (
                    name,
                    runtime,
                    str(b["batch"]),
                    _rate(row, b["items_per_s"]),
                    f"{b['items_per_s_min']:.1f}-{b['items_per_s_max']:.1f}",
                    _num(b["tokens_per_s"], ".0f"),
                    f"{b['p50_ms']:.1f}",
                    f"{b['p95_ms']:.1f}",
                )
            )
    settings = record["settings"]
    lines = _columns(table)
    lines.append("* no other row is both faster and better at recall@1 (the speed/quality trade-off)")
    lines += notes
    lines += ["", *_columns(detail), ""]
    rerank = any(r.get("task") == "rerank" for r in record["rows"])
    if any(r.get("task") == "generate" for r in record["rows"]):
        lines.append(
            f"generation: {GENERATED_TOKENS} greedy tokens per prompt; rate = generated tokens/s end to end, "
            "TOK/s = prompt "
            "tokens/s, P50/P95 = time to the first token; no quality score"
        )
    lines.append(
        f"quality: {settings['eval']} set ({settings['pairs']} pairs); embedders rank every passage"
        + (", rerankers 10 candidates per query" if rerank else "")
        + "; QUANT COS: mean cosine of the passage vectors against the most precise local version"
    )
    load = record.get("load_average")
    lines.append(
        f"timing: median of {settings['rounds']} rounds per batch size (warm-up excluded), "
        f"{settings['seconds']:g} s per model; {record['cpus']} CPUs, load average {_num(load, '.2f')}"
    )
    return lines


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _show_history(refs: tuple[str, ...], as_json: bool) -> None:
    from hanzo_cli import models
    from hanzo_cli.bench import history
    from hanzo_cli.errors import NotFoundError
    from hanzo_cli.output import echo_json

    wanted: set[str] | None = None
    if refs:
        wanted = set(refs)
        for ref in refs:
            try:
                found = models.find(ref)
            except Exception:  # noqa: BLE001 - a deleted model's name still matches its past rows
                found = None
            if found is not None:
                wanted.add(found.ref)
    entries = history.history(history.load_runs(), wanted)
    if not entries:
        what = f" of {', '.join(refs)}" if refs else ""
        raise NotFoundError(
            f"no benchmark runs{what} kept in {history.bench_dir()} (run: hanzo model:bench REF)"
        )
    if as_json:
        echo_json(entries)
        return
    rows = [
        (
            "DATE",
            "MODEL",
            "RUNTIME",
            "BEST RATE/s",
            "CHANGE",
            "LOAD s",
            "RSS MB",
            "R@1",
            "HANZO",
            "RUNTIME VERSION",
            "WHAT CHANGED",
        )
    ]
    for e in entries:
        rows.append(
            (
                str(e["created"])[:16].replace("T", " "),
                str(e["model"]),
                str(e["runtime"]),
                _num(e["best_rate"]) if e["status"] == "ok" else str(e["status"]),
                f"{e['rate_change']:+.1%}" if e["rate_change"] is not None else "",
                _num(e["load_s"], ".2f"),
                _num(e["peak_rss_mb"], ".0f"),
                _num(e["recall_at_1"], ".3f"),
                str(e["hanzo_version"]),
                str(e["runtime_version"] or "-"),
                "; ".join(e["changes"]),
            )
        )
    for line in _columns(rows):
        click.echo(line)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bench_cmd)
