"""hanzo model:bench on real models: MiniLM F16 and a Q8_0 quantised by llama.cpp, the tiny GGUFs.

Checks structure and sanity (positive, ordered, monotone where it must be, MiniLM far above a
random-weight model), never absolute speeds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_one_line_error, hanzo_json, run_hanzo

SETTINGS = {"eval": "built-in", "texts": "built-in", "pairs": 20}
FAST = ("--seconds", "0.4", "--rounds", "2", "--batch", "1,4")


def _check_batches(row: dict[str, Any], sizes: list[int], rounds: int) -> None:
    assert [b["batch"] for b in row["batches"]] == sizes
    for b in row["batches"]:
        assert 0 < b["items_per_s_min"] <= b["items_per_s"] <= b["items_per_s_max"]
        assert 0 < b["p50_ms"] <= b["p95_ms"]
        assert b["calls"] >= rounds and b["rounds"] == rounds


def test_minilm_quants_and_tiny_models_in_one_table(
    minilm_gguf: Path,
    minilm_q8_gguf: Path,
    tiny_qwen3_gguf: Path,
    tiny_qwen3_reranker_gguf: Path,
    import_as: Callable[[Path, str], str],
    tmp_path: Path,
) -> None:
    f16 = import_as(minilm_gguf, "minilm-f16")
    q8 = import_as(minilm_q8_gguf, "minilm-q8")
    tiny = import_as(tiny_qwen3_gguf, "tiny-qwen3")
    rerank = import_as(tiny_qwen3_reranker_gguf, "tiny-rerank")
    plot = tmp_path / "trade-off.svg"
    record = hanzo_json("model:bench", f16, q8, tiny, rerank, *FAST, "--plot", str(plot), "--json")

    rows = {r["ref"]: r for r in record["rows"]}
    assert set(rows) == {f16, q8, tiny, rerank}
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["runtime"] == "llamacpp" and row["runtime_version"].startswith("llama-cpp-python")
        assert row["load_s"] > 0 and row["first_ms"] > 0 and row["peak_rss_mb"] > 0
        _check_batches(row, [1, 4], 2)
        quality = row["quality"]
        assert 0 <= quality["recall_at_1"] <= quality["mrr_at_10"] <= 1  # MRR counts every rank-1 hit
    # embedders: texts and tokens; the reranker: pairs, no vectors
    assert rows[f16]["dimensions"] == rows[q8]["dimensions"] == 384 and rows[tiny]["dimensions"] == 32
    assert rows[rerank]["task"] == "rerank" and rows[rerank]["dimensions"] is None
    for b in rows[f16]["batches"]:
        assert b["tokens_per_s"] > b["items_per_s"]  # every sentence is several tokens
    assert rows[rerank]["batches"][0]["tokens_per_s"] is None

    # quality: a trained model against random weights on the built-in set (130 passages)
    assert rows[f16]["quality"]["recall_at_1"] > 0.8
    assert rows[f16]["quality"]["recall_at_1"] > rows[tiny]["quality"]["recall_at_1"] + 0.5
    assert rows[q8]["quality"]["recall_at_1"] > 0.8

    # the two real quants: Q8_0 against F16 (more bits per weight), close but not identical
    assert rows[f16]["bits_per_weight"] > rows[q8]["bits_per_weight"]
    assert rows[q8]["quant_reference"] == rows[f16]["model"] == "local:minilm-f16:latest"
    assert 0.99 < rows[q8]["quant_cosine"] < 0.999999
    assert rows[f16]["quant_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert "quant_cosine" not in rows[tiny]  # no other version of it

    # one table: finished rows fastest first; the trade-off front is marked
    rates = [max(b["items_per_s"] for b in r["batches"]) for r in record["rows"]]
    assert rates == sorted(rates, reverse=True)
    assert any(r["pareto"] for r in record["rows"] if r["task"] == "embed")
    assert record["settings"]["eval"] == "built-in" and record["settings"]["pairs"] >= 100

    # kept under the data dir, one JSON per run, as printed
    saved = Path(record["saved"])
    assert saved.parent == Path(os.environ["HANZO_HOME"]) / "bench"
    assert json.loads(saved.read_text())["rows"] == record["rows"]

    # the plot: one labelled point per finished row
    svg = ET.parse(plot).getroot()
    circles = svg.findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 4
    assert all("recall@1" in (c.findtext("{http://www.w3.org/2000/svg}title") or "") for c in circles)


def test_human_table_history_and_the_user_s_own_pairs(
    tiny_qwen3_gguf: Path, import_as: Callable[[Path, str], str], tmp_path: Path
) -> None:
    tiny = import_as(tiny_qwen3_gguf, "tiny-qwen3")
    pairs = tmp_path / "mine.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps({"query": q, "passage": p})
            for q, p in [("the cat", "a cat is on the mat"), ("hello", "hello world"), ("abc", "abc test")]
        )
        + "\n"
    )
    png = tmp_path / "plot.png"
    first = run_hanzo("model:bench", tiny, *FAST, "--eval", str(pairs), "--plot", str(png))
    if importlib.util.find_spec("matplotlib") is None:  # the bench extra is not installed
        assert_one_line_error(first, "needs matplotlib: pip install 'hanzo-cli[bench]'")
        first = run_hanzo("model:bench", tiny, *FAST, "--eval", str(pairs))
    else:
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "RUNTIME", "QUANT"]
    assert any(line.lstrip("* ").startswith("local:tiny-qwen3:latest") for line in lines[1:3])
    assert f"quality: {pairs} set (3 pairs)" in first.stdout
    assert "saved: " in first.stdout

    second = hanzo_json("model:bench", tiny, *FAST, "--texts", str(pairs), "--json")
    assert second["settings"]["texts"] == str(pairs)

    history = hanzo_json("model:bench", "--history", "tiny-qwen3", "--json")
    assert [h["model"] for h in history] == ["local:tiny-qwen3:latest"] * 2
    assert history[0]["rate_change"] is None and history[1]["rate_change"] is not None
    assert history[1]["changes"] == []  # same hanzo, runtime and model
    assert all(h["hanzo_version"] and h["runtime_version"] and h["digest"] for h in history)
    table = run_hanzo("model:bench", "--history")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3, table.stdout


def test_a_crashed_row_does_not_stop_the_others(
    minilm_gguf: Path, tiny_qwen3_gguf: Path, import_as: Callable[[Path, str], str]
) -> None:
    """A worker killed mid-run (here: by the runner's time limit) is one crashed row."""
    from hanzo_cli.bench import runner, texts

    import_as(minilm_gguf, "minilm")
    import_as(tiny_qwen3_gguf, "tiny")
    targets = runner.plan(["minilm", "tiny"], [])
    pairs = texts.builtin_pairs()[:20]
    spec = dict(texts=[p.passage for p in pairs], pairs=pairs, batches=[2], seconds=0.2, rounds=1)
    slow = runner.run(targets[:1], **spec, settings=SETTINGS, timeout=0.01)  # type: ignore[arg-type]
    crashed = slow["rows"][0]
    assert crashed["status"] == "crashed" and "killed by SIGKILL" in crashed["error"], crashed
    fine = runner.run(targets[1:], **spec, settings=SETTINGS)  # type: ignore[arg-type]
    assert fine["rows"][0]["status"] == "ok"

    from hanzo_cli.commands.bench import render

    lines = render({**fine, "rows": runner.rank_rows([crashed, *fine["rows"]])})
    assert lines[1].lstrip("* ").startswith("local:tiny:latest")  # the finished row first
    assert any(
        line.startswith("! local:minilm:latest (llamacpp) crashed: killed by SIGKILL") for line in lines
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["no-such-model"], "unknown model 'no-such-model'"),
        (["tiny", "--runtime", "no-such-runtime"], "unknown runtime 'no-such-runtime'"),
        (["tiny", "--batch", "0"], "--batch takes positive whole numbers"),
        (["tiny", "--batch", "1,x"], "--batch takes positive whole numbers"),
        (["tiny", "--seconds", "0"], "--seconds takes a positive number"),
        (["tiny", "--texts", "EMPTY"], "no texts"),
        (["tiny", "--texts", "MISSING"], "cannot read"),
        (["tiny", "--eval", "NOTJSON"], "line 2 is not JSON"),
        (["tiny", "--eval", "NOPASSAGE"], 'line 1 has no "passage" string'),
        (["tiny", "--eval", "EMPTY"], "needs at least 2 query/passage pairs"),
        (["tiny", "--plot", "out.txt"], "--plot writes .svg or .png"),
        ([], "give at least one model REF"),
    ],
)
def test_bad_input_is_one_clear_line(
    args: list[str],
    fragment: str,
    tiny_qwen3_gguf: Path,
    import_as: Callable[[Path, str], str],
    tmp_path: Path,
) -> None:
    import_as(tiny_qwen3_gguf, "tiny")
    files = {
        "EMPTY": "\n \n",
        "NOTJSON": '{"query": "a", "passage": "b"}\n{oops\n',
        "NOPASSAGE": '{"query": "a"}\n',
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    args = [str(tmp_path / a) if a in (*files, "MISSING") else a for a in args]
    if "--seconds" not in args:
        args += ["--seconds", "0.2"]  # were the input accepted, the run would be short
    proc = run_hanzo("model:bench", *args)
    code = 1 if fragment.startswith(("unknown model", "unknown runtime")) else 2
    assert_one_line_error(proc, fragment, code=code)
    assert not (Path(os.environ["HANZO_HOME"]) / "bench").exists()  # nothing measured, nothing kept


def test_a_runtime_that_cannot_run_the_model_is_one_line(
    tiny_qwen3_gguf: Path, import_as: Callable[[Path, str], str]
) -> None:
    import_as(tiny_qwen3_gguf, "tiny")
    proc = run_hanzo("model:bench", "tiny", "--runtime", "hashembed")
    if "unknown runtime" in proc.stderr:
        pytest.skip("the example runtime plugin (hanzo-hashembed) is not installed")
    assert_one_line_error(proc, "runtime 'hashembed' cannot embed a qwen3-architecture model")


def test_history_of_a_model_never_benchmarked_is_one_line() -> None:
    assert_one_line_error(
        run_hanzo("model:bench", "--history", "nothing"), "no benchmark runs of nothing", code=1
    )


def test_a_generation_model_gets_prompt_and_generated_tokens_per_second(
    tiny_llama_gguf: Path, import_as: Callable[[Path, str], str]
) -> None:
    """A GGUF declaring no pooling is an LLM: it is timed generating, with no retrieval score."""
    import_as(tiny_llama_gguf, "tiny-llm")
    record = hanzo_json("model:bench", "tiny-llm", "--seconds", "0.4", "--rounds", "2", "--json")
    (row,) = record["rows"]
    assert row["status"] == "ok" and row["task"] == "generate", row
    (timing,) = row["batches"]
    assert timing["batch"] == 1 and timing["calls"] >= 2
    assert 0 < timing["items_per_s_min"] <= timing["items_per_s"] <= timing["items_per_s_max"]
    assert timing["tokens_per_s"] > 0 and 0 < timing["p50_ms"] <= timing["p95_ms"]
    assert row["quality"] is None and row["dimensions"] is None and "pareto" not in row
    assert row["load_s"] > 0 and row["first_ms"] > 0 and row["peak_rss_mb"] > 0
