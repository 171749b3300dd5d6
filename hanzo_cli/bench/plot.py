"""Quality against speed, one point per model x runtime: SVG written directly (no dependency), PNG
through matplotlib (the optional ``bench`` extra), which is imported only here."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from hanzo_cli.bench.runner import best_rate
from hanzo_cli.errors import MissingPluginError, UsageError
from hanzo_cli.fsutil import atomic_write

WIDTH, HEIGHT, MARGIN = 720, 460, 70
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def check_plot_path(path: Path) -> None:
    """Refuse a plot file hanzo cannot write before anything is measured."""
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"--plot writes .svg or .png files, not {path.name!r}")
    if suffix == ".png":
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise MissingPluginError(
                "--plot FILE.png needs matplotlib: pip install 'hanzo-cli[bench]' (or write FILE.svg)"
            )


def points(rows: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(label, best texts/s, recall@1) of each finished row."""
    return [
        (f"{r['model']} ({r['runtime']})", best_rate(r), r["quality"]["recall_at_1"])
        for r in rows
        if r.get("status") == "ok" and r.get("quality")
    ]


def write_plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    pts = points(rows)
    if not pts:
        raise UsageError("nothing to plot: no model finished its benchmark")
    if path.suffix.lower() == ".png":
        _write_png(path, pts, title)
    else:
        atomic_write(path, svg(pts, title).encode())


def svg(pts: list[tuple[str, float, float]], title: str) -> str:
    """A scatter plot: throughput (log scale when it spans over 10x) across, recall@1 up."""
    speeds = [p[1] for p in pts]
    low, high = min(speeds), max(speeds)
    log = high / max(low, 1e-9) > 10
    if log:
        lo, hi = math.log10(low) - 0.1, math.log10(high) + 0.1
    else:
        lo, hi = low * 0.9 if low != high else low * 0.5, high * 1.1 if low != high else high * 1.5

    def x(speed: float) -> float:
        value = math.log10(speed) if log else speed
        return MARGIN + (value - lo) / (hi - lo) * (WIDTH - 2 * MARGIN)

    def y(recall: float) -> float:
        return HEIGHT - MARGIN - recall * (HEIGHT - 2 * MARGIN)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
        'stroke="black"/>',
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 25}" text-anchor="middle">'
        f"texts/s, best batch size{' (log scale)' if log else ''}</text>",
        f'<text x="20" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 20 {HEIGHT / 2})">'
        "recall@1</text>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text x="{MARGIN - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
        out.append(
            f'<line x1="{MARGIN}" y1="{y(tick):.1f}" x2="{WIDTH - MARGIN}" y2="{y(tick):.1f}" stroke="#ddd"/>'
        )
    for speed in (low, high):
        out.append(
            f'<text x="{x(speed):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{speed:.3g}</text>'
        )
    for i, (label, speed, recall) in enumerate(pts):
        colour = COLOURS[i % len(COLOURS)]
        out.append(
            f'<circle cx="{x(speed):.1f}" cy="{y(recall):.1f}" r="6" fill="{colour}"><title>'
            f"{escape(label)}: {speed:.1f} texts/s, recall@1 {recall:.3f}</title></circle>"
        )
        out.append(
            f'<text x="{x(speed) + 9:.1f}" y="{y(recall) - 8:.1f}" fill="{colour}">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _write_png(path: Path, pts: list[tuple[str, float, float]], title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, speed, recall in pts:
        ax.scatter(speed, recall, s=40)
        ax.annotate(label, (speed, recall), textcoords="offset points", xytext=(6, 6), fontsize=8)
    speeds = [p[1] for p in pts]
    if max(speeds) / max(min(speeds), 1e-9) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("texts/s, best batch size")
    ax.set_ylabel("recall@1")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
