"""``embedding:pull``, ``embedding:test`` and ``rerank``: catalog models, run in-process."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from hanzo_cli.constants import MODEL_FORMATS
from hanzo_cli.errors import MissingPluginError
from hanzo_cli.extras import missing_plugin_hint
from hanzo_cli.hookspecs import hookimpl

if TYPE_CHECKING:
    from hanzo_cli.plugins import Registry

TIERS = ("flagship", "balanced", "lightweight")
#: The reranker that goes with each embedding tier (the catalog has two reranker tiers).
RERANKER_TIER = {"flagship": "primary", "balanced": "primary", "lightweight": "lightweight"}
#: How many leading values of each vector the human output shows.
SHOWN_VALUES = 5
#: Most texts whose similarity matrix the human output prints (beyond that it is a wall of numbers
#: that costs more to format than to compute; --json always has it).
SHOWN_SIMILARITY = 16


@click.command("embedding:pull")
@click.argument("tier", type=click.Choice(TIERS), default="lightweight")
@click.option("--reranker", is_flag=True, help="Also pull the tier's reranker (flagship/balanced: primary).")
@click.option(
    "--provider",
    "-p",
    metavar="NAME",
    help="Provider to pull from (default: provider.default, else the first by priority with the tier).",
)
@click.option(
    "--format",
    "model_format",
    type=click.Choice(MODEL_FORMATS),
    default="gguf",
    show_default=True,
    help="gguf (llama.cpp) or safetensors: the Hub's own Qwen3-Embedding repo (mistral.rs).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def pull_cmd(tier: str, reranker: bool, provider: str | None, model_format: str, quiet: bool) -> None:
    """Pull the catalog's Qwen3 embedding model of TIER (default: lightweight). Rerankers are GGUF."""
    from hanzo_cli import models
    from hanzo_cli.config import get_setting
    from hanzo_cli.errors import HanzoError
    from hanzo_cli.output import human_size, info, set_quiet
    from hanzo_cli.plugins import registry
    from hanzo_cli.providers import PullOptions

    set_quiet(quiet)
    reg = registry()
    chosen = reg.provider(
        provider or get_setting("provider.default") or _tier_provider(reg, tier, model_format)
    )
    wanted = [("embed", tier, model_format)] + ([("rerank", RERANKER_TIER[tier], "gguf")] if reranker else [])
    for task, task_tier, fmt in wanted:
        entries = reg.catalog.tier(task, task_tier, chosen.name, fmt)
        if not entries:
            kind = "" if fmt == "gguf" else f"{fmt} "
            raise HanzoError(
                f"the catalog has no {task_tier} {kind}{task} model for provider {chosen.name!r}"
            )
        entry = entries[0]
        info(f"pulling {entry.alias} ({chosen.name}:{entry.name})")
        pulled = models.pull(entry.alias, chosen.name, PullOptions(quiet=quiet))
        info(f"pulled {pulled.provider}:{pulled.name} ({human_size(pulled.size)}) -> {pulled.path}")
        setting = "embedding.model" if task == "embed" else "reranker.model"
        if get_setting(setting) not in (None, entry.alias) or task_tier != "lightweight":
            info(f"make it the default with: hanzo config:set {setting} {entry.alias}")


def _tier_provider(reg: Registry, tier: str, model_format: str = "gguf") -> str:
    """The first provider, by priority, whose catalog has the tier in ``model_format`` (providers
    are kept in priority order, so the seed's primary source, Ollama, wins when it is installed)."""
    for provider in reg.providers.values():
        if provider.can_pull and reg.catalog.tier("embed", tier, provider.name, model_format):
            return provider.name
    # Ollama has the GGUF tiers; only Hugging Face has Qwen's safetensors repos
    hint = missing_plugin_hint("provider", "ollama" if model_format == "gguf" else "huggingface")
    kind = "" if model_format == "gguf" else f" {model_format}"
    raise MissingPluginError(f"no installed provider's catalog has the {tier}{kind} tier{hint}")


@click.command("embedding:test")
@click.argument("texts", nargs=-1, required=True, metavar="TEXT...")
@click.option("--model", "-m", "ref", metavar="REF", help="Model (default: config embedding.model).")
@click.option("--provider", "-p", metavar="NAME", help="Provider that has (or pulls) the model.")
@click.option("--runtime", "-r", metavar="NAME", help="Runtime to use (default: the first that fits).")
@click.option("--query", is_flag=True, help="Embed the texts as search queries (Qwen3 instruction prefix).")
@click.option("--instruction", metavar="TEXT", help="Task for the query prefix (implies --query).")
@click.option(
    "--dimensions", type=click.IntRange(min=1), metavar="N", help="Keep the first N values (Matryoshka)."
)
@click.option("--insecure", is_flag=True, help="Allow a plain-HTTP registry if the model must be pulled.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def test_cmd(
    texts: tuple[str, ...],
    ref: str | None,
    provider: str | None,
    runtime: str | None,
    query: bool,
    instruction: str | None,
    dimensions: int | None,
    insecure: bool,
    as_json: bool,
) -> None:
    """Embed TEXT... in-process and show the vectors and their cosine similarities.

    A model that is not pulled yet is pulled first.
    """
    from hanzo_cli.embedding import cosine_matrix, load_embedding_model
    from hanzo_cli.output import echo_json, warn
    from hanzo_cli.providers import PullOptions

    started = time.perf_counter()
    options = PullOptions(insecure=insecure)
    model = load_embedding_model(ref, provider=provider, runtime=runtime, pull_options=options)
    loaded = time.perf_counter()
    try:
        if (query or instruction) and model.query_format is None:
            warn(f"{model.name} takes no query instruction; embedding the texts as they are")
        vectors = model.embed(list(texts), query=query, instruction=instruction, dimensions=dimensions)
        latency = time.perf_counter() - loaded
    finally:
        model.close()
    shown = 1 < len(vectors) and (as_json or len(vectors) <= SHOWN_SIMILARITY)
    similarity = cosine_matrix(vectors) if shown else None
    if as_json:
        data: dict[str, object] = {
            "model": model.name,
            "runtime": model.runtime.name,
            "dimensions": len(vectors[0]),
            "embeddings": vectors,
        }
        if similarity is not None:
            data["similarity"] = similarity
        echo_json(data)
        return

    facts = ", ".join([*model.facts, f"{model.pooling} pooling"])
    rows = [
        ("model", f"{model.name} ({facts})"),
        ("runtime", model.runtime.name),
        ("dimensions", f"{len(vectors[0])}" + (f" of {model.dimensions}" if dimensions else "")),
        ("load time", f"{loaded - started:.2f} s"),
        ("latency", f"{latency * 1000:.1f} ms for {len(texts)} text{'s' if len(texts) > 1 else ''}"),
    ]
    for key, value in rows:
        click.echo(f"{key:<11} {value}")
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1):
        norm = sum(v * v for v in vector) ** 0.5
        head = ", ".join(f"{v:+.4f}" for v in vector[:SHOWN_VALUES])
        click.echo(f"[{i}] norm {norm:.4f}  [{head}, …]  {_clip(text)}")
    if similarity is not None:
        click.echo("cosine similarity:")
        click.echo("     " + "".join(f"{f'[{j}]':>7}" for j in range(1, len(texts) + 1)))
        for i, row in enumerate(similarity, start=1):
            click.echo(f"{f'[{i}]':<5}" + "".join(f"{value:7.3f}" for value in row))
    elif len(vectors) > SHOWN_SIMILARITY:
        click.echo(f"cosine similarity: not shown for over {SHOWN_SIMILARITY} texts (--json has it)")


@click.command("rerank")
@click.argument("query")
@click.argument("documents", nargs=-1, required=True, metavar="DOC...")
@click.option("--model", "-m", "ref", metavar="REF", help="Reranker (default: config reranker.model).")
@click.option("--provider", "-p", metavar="NAME", help="Provider that has (or pulls) the model.")
@click.option("--runtime", "-r", metavar="NAME", help="Runtime to use (default: the first that fits).")
@click.option("--insecure", is_flag=True, help="Allow a plain-HTTP registry if the model must be pulled.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rerank_cmd(
    query: str,
    documents: tuple[str, ...],
    ref: str | None,
    provider: str | None,
    runtime: str | None,
    insecure: bool,
    as_json: bool,
) -> None:
    """Score each DOC for QUERY with a reranker, in-process; most relevant first."""
    from hanzo_cli.embedding import load_reranker
    from hanzo_cli.output import echo_json
    from hanzo_cli.providers import PullOptions

    options = PullOptions(insecure=insecure)
    model = load_reranker(ref, provider=provider, runtime=runtime, pull_options=options)
    try:
        scores = model.rerank(query, list(documents))
    finally:
        model.close()
    ranked = sorted(range(len(documents)), key=lambda i: scores[i], reverse=True)
    if as_json:
        echo_json(
            {
                "model": model.name,
                "runtime": model.runtime.name,
                "query": query,
                "results": [
                    {"index": i, "relevance_score": scores[i], "document": documents[i]} for i in ranked
                ],
            }
        )
        return
    click.echo(f"model    {model.name}\nruntime  {model.runtime.name}")
    for i in ranked:
        click.echo(f"{scores[i]:8.4f}  [{i + 1}] {_clip(documents[i])}")


def _clip(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (pull_cmd, test_cmd, rerank_cmd):
        cli.add_command(command)
