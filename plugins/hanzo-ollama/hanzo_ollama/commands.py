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
