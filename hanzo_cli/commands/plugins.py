"""The built-in ``plugins``, ``plugins:install`` and ``plugins:uninstall`` commands.

Installing runs ``python -m pip`` with the interpreter hanzo runs on, so a plugin lands in hanzo's own
environment whatever ``pip`` is first on PATH (as ``llm install`` does). pip resolves every requirement
before it changes anything and rolls back what it removed when an install fails, so a failure leaves
the installation as it was; hanzo checks that it did and says so in its one ``Error:`` line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hanzo_cli.errors import HanzoError, UsageError
from hanzo_cli.hookspecs import hookimpl

if TYPE_CHECKING:
    import subprocess

#: A project name as PEP 508 allows it, before any version specifier or extras.
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: hanzo itself: uninstalling it from inside would remove the running program.
_CORE = "hanzo-cli"
#: The multiplication sign that starts pip's formatted error summaries ("Encountered error while …").
_CROSS = "\u00d7"


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Hanzo_CLI`` and ``hanzo.cli`` are ``hanzo-cli``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_location(name: str) -> bool:
    """A folder, archive or URL pip installs from, rather than a name on the index."""
    return "/" in name or "\\" in name or name.endswith((".whl", ".tar.gz", ".zip")) or Path(name).is_dir()


def requirement_for(name: str) -> str:
    """What pip is asked for: a first-party short name becomes its distribution, pinned to this
    hanzo's version (the plugins are released together); anything else goes to pip as typed."""
    from hanzo_cli import __version__
    from hanzo_cli.extras import FIRST_PARTY

    first_party = FIRST_PARTY.get(name.lower())
    if first_party is not None:
        return f"{first_party[1]}=={__version__}"
    if not _is_location(name):
        _distribution_name(name)  # refuses what is not a requirement at all
    return name


def _distribution_name(name: str, *, exact: bool = False) -> str:
    """The distribution a NAME argument means: a first-party short name's, or the requirement's name."""
    from hanzo_cli.extras import FIRST_PARTY

    first_party = FIRST_PARTY.get(name.lower())
    if first_party is not None:
        return first_party[1]
    match = _NAME_RE.match(name)
    if match is None or name.startswith("-") or (exact and match.end() != len(name)):
        raise UsageError(
            f"{name!r} is not a {'distribution name' if exact else 'package name or requirement'}"
        )
    return match.group(0)


def installed_distributions() -> dict[str, str]:
    """Every distribution hanzo's interpreter sees: normalised name -> version."""
    import importlib
    from importlib.metadata import distributions

    importlib.invalidate_caches()
    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize(name), dist.version)  # the first on sys.path is the one imported
    return found


def _hanzo_entry_points(name: str) -> list[str] | None:
    """The names of ``name``'s ``hanzo`` entry points; None if it is not installed."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return None
    return sorted(ep.name for ep in dist.entry_points if ep.group == "hanzo")


def run_pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m pip ARGS`` with hanzo's interpreter; pip's progress goes to stderr, its own
    warnings and errors are captured for the one line hanzo prints."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        stdout=sys.stderr,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def pip_failure(stderr: str) -> str:
    """What went wrong, from pip's error output: its first ``ERROR:`` line, or for a package that
    failed to build, pip's summary and the last line the build printed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("ERROR:") :].strip() for line in lines if line.startswith("ERROR:")]
    errors = [e for e in errors if not e.startswith("ResolutionImpossible")] or errors
    if errors:
        return errors[0].rstrip(".")
    build_output: list[str] = []
    inside = False
    for line in lines:
        if line.endswith("lines of output]"):
            inside = True
        elif line == "[end of output]":
            inside = False
        elif inside:
            build_output.append(line)
    summaries = [line.lstrip(_CROSS).strip().rstrip(".") for line in lines if line.startswith(_CROSS)]
    if summaries:
        return summaries[0] + (f": {build_output[-1]}" if build_output else "")
    return lines[-1] if lines else "pip failed without a message"


def _changes(before: dict[str, str], after: dict[str, str]) -> str:
    """``"a 1.0 -> 1.1, b - -> 2.0"`` for every distribution whose version differs (``-``: absent)."""
    names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    return ", ".join(f"{n} {before.get(n, '-')} -> {after.get(n, '-')}" for n in names)


def _check_pip_result(proc: subprocess.CompletedProcess[str], what: str, before: dict[str, str]) -> None:
    if proc.returncode == 0:
        for line in proc.stderr.splitlines():
            if line.startswith("WARNING:"):
                click.echo(line, err=True)  # pip's own warnings, e.g. a dependency conflict it allowed
        return
    reason = pip_failure(proc.stderr)
    if "conflicting dependencies" in reason:
        from hanzo_cli import __version__

        reason += f"; hanzo keeps hanzo-cli at {__version__}, the version running"
    changed = _changes(before, installed_distributions())
    outcome = f"pip changed {changed}" if changed else "nothing was changed"
    raise HanzoError(f"pip could not {what}: {reason} ({outcome})")


def _forget_plugin_cache() -> None:
    from hanzo_cli.plugins import forget_entry_points

    forget_entry_points()


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include hanzo's built-in plugins.")
def plugins_cmd(as_json: bool, show_all: bool) -> None:
    """List the loaded plugins with their distribution, version and hooks."""
    from hanzo_cli.output import echo_json
    from hanzo_cli.plugins import plugin_records

    records = [r for r in plugin_records() if show_all or not r.builtin]
    if as_json:
        echo_json(
            [
                {
                    "name": r.name,
                    "distribution": r.distribution,
                    "version": r.version,
                    "hooks": r.hooks,
                    "builtin": r.builtin,
                }
                for r in records
            ]
        )
        return
    if not records:
        click.echo("No plugins installed. Try: hanzo plugins:install ollama llamacpp", err=True)
    for r in records:
        click.echo(f"{r.name}  {r.distribution} {r.version}  hooks: {', '.join(r.hooks)}")


@click.command("plugins:install")
@click.argument("names", nargs=-1)
@click.option(
    "--editable",
    "-e",
    "editables",
    multiple=True,
    metavar="PATH",
    help="Install a plugin from a source folder, editable.",
)
@click.option("--upgrade", "-U", is_flag=True, help="Upgrade the named packages if a newer version exists.")
def install_cmd(names: tuple[str, ...], editables: tuple[str, ...], upgrade: bool) -> None:
    """Install plugins into hanzo's own environment with pip.

    NAME is a first-party plugin (ollama, huggingface, lmstudio, llamacpp, ctransformers), installed
    at this hanzo's version, or anything pip installs (hanzo-foo, 'hanzo-foo>=1.2', a folder, a wheel,
    a URL). hanzo itself is never
    replaced: an install that would need another hanzo-cli fails and changes nothing."""
    import tempfile

    from hanzo_cli import __version__
    from hanzo_cli.output import info, warn

    if not names and not editables:
        raise UsageError("name at least one plugin, or a source folder with -e PATH")
    requirements = [requirement_for(name) for name in names]
    for path in editables:
        if not Path(path).is_dir():
            raise UsageError(f"-e {path}: not a folder")
    before = installed_distributions()
    with tempfile.TemporaryDirectory(prefix="hanzo-pip-") as tmp:
        constraints = Path(tmp, "constraints.txt")
        constraints.write_text(f"{_CORE}=={__version__}\n", encoding="utf-8")  # keep the running hanzo
        report = Path(tmp, "report.json")
        args = ["install", "--report", str(report), "--constraint", str(constraints)]
        if upgrade:
            args.append("--upgrade")
        for path in editables:
            args += ["--editable", str(Path(path).resolve())]
        proc = run_pip(args + requirements)
        _forget_plugin_cache()
        asked_for = " ".join([*names, *(f"-e {path}" for path in editables)])
        _check_pip_result(proc, f"install {asked_for}", before)
        installed = _read_report(report)
    asked = {normalize(_distribution_name(name)) for name in names if not _is_location(name)}
    asked |= {normalize(name) for name, requested in installed.items() if requested}  # folders, files, URLs
    newly = {normalize(name) for name in installed}
    after = installed_distributions()
    for name in sorted(asked):
        entry_points = _hanzo_entry_points(name)
        if entry_points is None:
            continue  # not installed under this name (pip said why, if anything)
        if not entry_points:
            warn(f"{name} {after.get(name)} registers no 'hanzo' entry point: hanzo will not load it")
        elif name in newly:
            info(f"installed {name} {after.get(name)}: plugin {', '.join(entry_points)}")
        else:
            info(f"{name} {after.get(name)} was already installed: plugin {', '.join(entry_points)}")


def _read_report(path: Path) -> dict[str, bool]:
    """pip's install report: distribution name -> whether the user asked for it (not a dependency)."""
    import json

    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        item["metadata"]["name"]: bool(item.get("requested"))
        for item in data.get("install", [])
        if isinstance(item, dict) and "metadata" in item
    }


@click.command("plugins:uninstall")
@click.argument("names", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def uninstall_cmd(names: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins from hanzo's environment with pip (first-party short names work too)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from hanzo_cli.output import info

    dists = [_distribution_name(name, exact=True) for name in names]
    protected = {_CORE}
    try:
        for requirement in distribution(_CORE).requires or []:
            if "extra ==" not in requirement:  # hanzo's own dependencies, not its optional plugins
                match = _NAME_RE.match(requirement)
                protected.add(normalize(match.group(0)) if match else "")
    except PackageNotFoundError:
        pass
    installed = installed_distributions()
    for dist in dists:
        if normalize(dist) in protected:
            what = "hanzo itself" if normalize(dist) == _CORE else "a dependency of hanzo itself"
            raise UsageError(f"refusing to uninstall {dist}: it is {what} (use pip if you mean it)")
        if normalize(dist) not in installed:
            raise HanzoError(f"{dist} is not installed")
    listing = ", ".join(f"{d} {installed[normalize(d)]}" for d in dists)
    if not yes:
        if not sys.stdin.isatty():
            raise HanzoError("refusing to uninstall without --yes (no terminal to confirm on)")
        click.confirm(f"Uninstall {listing}?", abort=True)
    proc = run_pip(["uninstall", "--yes", *dists])
    _forget_plugin_cache()
    _check_pip_result(proc, f"uninstall {' '.join(dists)}", installed)
    info(f"uninstalled {listing}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (plugins_cmd, install_cmd, uninstall_cmd):
        cli.add_command(command)
