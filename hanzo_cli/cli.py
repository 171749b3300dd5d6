"""The ``hanzo`` command: a thin Click group whose commands all come from plugins (built-in ones
included). Errors become one ``Error: …`` line on stderr; usage errors exit 2, others 1.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

import click

from hanzo_cli import __version__
from hanzo_cli.constants import ENV_DEBUG, env_flag
from hanzo_cli.errors import HanzoError, MissingPluginError


class HanzoGroup(click.Group):
    """Loads plugins (and their commands) only when a command list or lookup is needed."""

    _commands_loaded = False

    def _load(self) -> None:
        if not self._commands_loaded:
            self._commands_loaded = True
            from hanzo_cli.plugins import load_plugins, pm

            load_plugins()
            pm.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        command = self.commands.get(cmd_name)
        if command is None:
            from hanzo_cli.extras import missing_plugin_hint

            hint = missing_plugin_hint("command", cmd_name)
            if hint:
                return _missing_command(cmd_name, hint)
        return command


def _missing_command(name: str, hint: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def missing() -> None:
        raise MissingPluginError(f"{name} is provided by a plugin that is not installed{hint}")

    return missing


@click.group(cls=HanzoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="hanzo")
def cli() -> None:
    """Pull embedding, reranker and LLM models from Ollama, Hugging Face or LM Studio, and run them.

    Model references are [provider:]name, e.g. qwen3-embedding-0.6b,
    dengcao/Qwen3-Embedding-8B:Q5_K_M or hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0.
    """


def describe_error(exc: BaseException) -> str:
    """One line for an unexpected exception (network, file system, library errors)."""
    module = type(exc).__module__.split(".")[0]
    if module in ("httpx", "httpcore"):
        request = getattr(exc, "_request", None)
        where = f" ({request.url.copy_with(query=None)})" if request is not None else ""
        return f"network error{where}: {exc or type(exc).__name__}"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full writing {exc.filename or 'a file'}"
        if isinstance(exc, PermissionError):
            return f"permission denied: {exc.filename or exc}"
        return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    debug = env_flag(ENV_DEBUG)
    try:
        rv = cli.main(args=argv, prog_name="hanzo", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except HanzoError as exc:
        # The one place a hanzo error becomes CLI output.
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors Click itself found
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            click.echo("Interrupted. Partial downloads are kept; run the command again to resume.", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted. Partial downloads are kept; run the command again to resume.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()  # `hanzo model:list | head`: the reader left; nothing to report
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"Error: {describe_error(exc)} (HANZO_DEBUG=1 shows the traceback)", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
