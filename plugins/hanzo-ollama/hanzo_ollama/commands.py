"""The ``model:push`` command this plugin adds to the CLI."""

from __future__ import annotations

import click


@click.command("model:push")
@click.argument("name")
@click.argument("dest")
@click.option("--insecure", is_flag=True, help="Use plain HTTP (a registry without TLS).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print what was uploaded and skipped as JSON.")
def push_cmd(name: str, dest: str, insecure: bool, quiet: bool, as_json: bool) -> None:
    """Upload a pulled or imported model to a registry, as an Ollama-compatible manifest.

    NAME is a model in the Ollama layout on disk ($OLLAMA_MODELS, else hanzo's store), or
    local:NAME for a GGUF imported with model:import. DEST is [host/][namespace/]model[:tag],
    e.g. 127.0.0.1:5000/team/qwen3-embed:q8. Blobs the registry already has are not sent again;
    every node can then pull the model with hanzo or with `ollama pull --insecure`.
    """
    from hanzo_cli.api import echo_json, info, set_quiet
    from hanzo_ollama.push import push_model

    set_quiet(quiet)
    result = push_model(name, dest, insecure=insecure)
    if as_json:
        echo_json(result.to_json())
    else:
        info(
            f"pushed {result.source} to {result.destination} "
            f"({len(result.uploaded)} blobs uploaded, {len(result.skipped)} already there)"
        )


@click.command("model:mirror")
@click.argument("refs", nargs=-1)
@click.option("--to", "to", required=True, help="The registry namespace to copy to: HOST/NAMESPACE.")
@click.option("--insecure", is_flag=True, help="Use plain HTTP (a registry without TLS).")
@click.option("--all", "every", is_flag=True, help="Every model in the Ollama layout on disk.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print what was uploaded, mounted and skipped as JSON.")
def mirror_cmd(
    refs: tuple[str, ...], to: str, insecure: bool, every: bool, quiet: bool, as_json: bool
) -> None:
    """Copy local models to a private registry, for a fleet to pull from.

    REFS are models on disk: Ollama-layout ones (ollama:NAME, local:NAME) as they are, GGUFs of
    other providers (hf:REPO:QUANT, lmstudio:...) wrapped as Ollama-format models. Each goes to
    HOST/NAMESPACE/<model>:<tag>. Blobs the registry has are not sent again, and blobs shared with
    a model mirrored earlier in the same run are mounted from its repository. Nodes then run
    `hanzo model:pull [--insecure] HOST/NAMESPACE/<model>:<tag>`.
    """
    from hanzo_cli.api import echo_json, info, set_quiet
    from hanzo_ollama.mirror import mirror_models

    set_quiet(quiet)
    results = mirror_models(list(refs), to, insecure=insecure, every=every)
    if as_json:
        echo_json([r.to_json() for r in results])
        return
    for r in results:
        info(
            f"mirrored {r.source} to {r.destination} ({len(r.uploaded)} blobs uploaded, "
            f"{len(r.mounted)} mounted, {len(r.skipped)} already there)"
        )
