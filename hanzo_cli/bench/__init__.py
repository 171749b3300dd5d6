"""``hanzo model:bench`` and the repo's benchmarks: one measurement code for both.

- :mod:`hanzo_cli.bench.texts`: the inputs (texts to embed, query/passage pairs to score; the
  built-in retrieval set is ``data/retrieval.jsonl``, described in ``data/README.md``);
- :mod:`hanzo_cli.bench.measure`: timing (warm-up excluded, rounds, percentiles), peak RSS, and
  whole-process timing for comparisons against other programs;
- :mod:`hanzo_cli.bench.quality`: recall@1, MRR@10 and the mean cosine between two quantisations;
- :mod:`hanzo_cli.bench.worker`: one model x runtime, measured in a child process of its own, so
  peak RSS and crashes belong to one row;
- :mod:`hanzo_cli.bench.runner`: plans the rows, runs the workers, compares quantisations;
- :mod:`hanzo_cli.bench.history` and :mod:`hanzo_cli.bench.plot`: kept runs and the quality/speed plot.

Nothing here is imported by ``hanzo --help``; numpy and the runtimes load inside functions.
"""
