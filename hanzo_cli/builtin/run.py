"""``hanzo run MODEL [PROMPT]``: generate text in-process, streamed to stdout (as ``ollama run``).

A PROMPT (or stdin, when piped) is generated from once; on a terminal without one, an interactive chat
(``/bye`` or Ctrl-D ends it). A prompt goes through the model's chat template unless ``--raw`` is
given or the model has none (a base model completes it as it is); the chat needs a template, the
model's or ``--template``. Loaded by ``hanzo --help``: only click at module level.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from hanzo_cli.api import hookimpl

if TYPE_CHECKING:
    from hanzo_cli.api import SamplingOptions
    from hanzo_cli.builtin.generation import GenerationModel


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(run_cmd)


@click.command("run")
@click.argument("ref", metavar="MODEL")
@click.argument("prompt", required=False)
@click.option("--system", metavar="TEXT", help="A system message for the chat template.")
@click.option("--raw", is_flag=True, help="Complete PROMPT as it is, without the chat template.")
@click.option("--template", metavar="JINJA", help="A chat template, for a model without one.")
@click.option("--temperature", type=click.FloatRange(min=0), help="0: always the most likely token.")
@click.option("--top-p", type=click.FloatRange(0, 1))
@click.option("--top-k", type=click.IntRange(min=0))
@click.option("--seed", type=int)
@click.option("--max-tokens", "-n", type=click.IntRange(min=1), help="Stop after this many tokens.")
@click.option("--stop", multiple=True, metavar="TEXT", help="Stop before this text (repeatable).")
@click.option("--runtime", metavar="NAME", help="Runtime to generate with.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole response as JSON at the end.")
def run_cmd(
    ref: str,
    prompt: str | None,
    system: str | None,
    raw: bool,
    template: str | None,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    max_tokens: int | None,
    stop: tuple[str, ...],
    runtime: str | None,
    as_json: bool,
) -> None:
    """Generate text with MODEL in-process: from PROMPT (or stdin when piped), else an interactive chat.

    The model is pulled first if it is missing.
    """
    from hanzo_cli.api import HanzoError, SamplingOptions
    from hanzo_cli.builtin.generation import load_generation_model

    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    options = SamplingOptions(max_tokens, temperature, top_p, top_k, seed, stop)
    model = load_generation_model(ref, runtime=runtime)
    try:
        if prompt is not None:
            text = _prompt_for(model, prompt, system, raw, template)
            _answer(model, ref, text, options, as_json)
            return
        if as_json:
            raise HanzoError("--json needs a PROMPT (or one on stdin)")
        if not (template or getattr(model.generator, "chat_template", None)):
            raise HanzoError(
                f"{ref} has no chat template (a base model): give a PROMPT to complete, or --template"
            )
        _chat(model, system, template, options)
    finally:
        model.close()


def _prompt_for(
    model: GenerationModel, prompt: str, system: str | None, raw: bool, template: str | None
) -> str:
    if raw or not (template or getattr(model.generator, "chat_template", None)):
        return prompt
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return model.generator.chat_prompt(messages, template)


def _answer(model: GenerationModel, ref: str, prompt: str, options: SamplingOptions, as_json: bool) -> None:
    from hanzo_cli.api import echo_json

    pieces: list[str] = []
    last: Any = None
    for chunk in model.generator.generate(prompt, options):
        if chunk.text:
            pieces.append(chunk.text)
            if not as_json:
                click.echo(chunk.text, nl=False)
                sys.stdout.flush()
        if chunk.finish_reason is not None:
            last = chunk
    if as_json:
        echo_json(
            {
                "model": ref,
                "response": "".join(pieces),
                "done_reason": last.finish_reason if last else "stop",
                "prompt_eval_count": last.prompt_tokens if last else 0,
                "eval_count": last.completion_tokens if last else 0,
            }
        )
    else:
        click.echo()


def _chat(model: GenerationModel, system: str | None, template: str | None, options: SamplingOptions) -> None:
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    click.echo("Chatting with the model; /bye or Ctrl-D ends.", err=True)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            click.echo()
            return
        if line.strip() in ("/bye", "/exit"):
            return
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        prompt = model.generator.chat_prompt(messages, template)
        reply: list[str] = []
        for chunk in model.generator.generate(prompt, options):
            if chunk.text:
                reply.append(chunk.text)
                click.echo(chunk.text, nl=False)
                sys.stdout.flush()
        click.echo("\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
