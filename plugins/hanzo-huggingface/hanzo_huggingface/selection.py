"""Which files of a repo a name means: one GGUF model (a quant, all shards of a split model), one
file, or a snapshot filtered by patterns.

The same rules apply to a repo's listing on the Hub (when pulling) and to a cached snapshot (when
showing, deleting or pulling offline), so a name means the same files in both places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hanzo_cli.api import (
    GGUFModel,
    HanzoError,
    ModelNotFoundError,
    available,
    default_model,
    gguf_models,
)


@dataclass(frozen=True)
class Choice:
    """The files a name selects; ``model`` is set when they form one GGUF model."""

    paths: tuple[str, ...]
    model: GGUFModel | None = None
    #: Set when the quant was chosen by QUANT_PREFERENCE rather than asked for: the quants to choose from.
    default_among: str | None = None


def choose(
    files: Mapping[str, int],
    *,
    quant: str | None = None,
    file: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    where: str,
) -> Choice:
    """Select from ``files`` (path -> size): by ``file``, by patterns, by ``quant``; with none of them
    the default quant of a GGUF repo, or every file of any other repo. ``where`` names the repo in
    errors. Raises ModelNotFoundError when nothing matches, HanzoError when a choice is ambiguous."""
    if sum(bool(x) for x in (quant, file, include or exclude)) > 1:
        raise HanzoError("give only one of: a quant (repo:QUANT), --file, or --include/--exclude")
    models = gguf_models(files)
    if file:
        return _by_file(files, models, file, where)
    if include or exclude:
        return _by_patterns(files, include, exclude, where)
    if quant:
        return _one(models, [m for m in models if m.matches(quant)], quant, where)
    if not models:
        if not files:
            raise ModelNotFoundError(f"{where} has no files")
        return Choice(tuple(sorted(files)))
    best = default_model(models)
    assert best is not None  # models is not empty
    chosen = _one(models, [best], best.quant or best.label(), where)
    return Choice(chosen.paths, chosen.model, default_among=available(models))


def _one(models: list[GGUFModel], matching: list[GGUFModel], quant: str, where: str) -> Choice:
    if not models:
        raise ModelNotFoundError(f"{where} has no GGUF files; leave out :{quant} to get the whole repo")
    if not matching:
        raise ModelNotFoundError(f"{where} has no {quant} GGUF (available: {available(models)})")
    if len(matching) > 1:
        names = ", ".join(m.first for m in matching)
        raise HanzoError(f"several GGUF models in {where} match {quant}: {names}; pick one with --file")
    model = matching[0]
    if not model.complete:
        raise HanzoError(f"split model {model.first} in {where} is missing shards")
    return Choice(model.paths, model)


def _by_file(files: Mapping[str, int], models: list[GGUFModel], file: str, where: str) -> Choice:
    if file not in files:
        hint = f" (GGUF files: {', '.join(m.first for m in models)})" if models else ""
        raise ModelNotFoundError(f"file {file!r} not found in {where}{hint}")
    for model in models:
        if file in model.paths:
            if not model.complete:
                raise HanzoError(f"split model {model.first} in {where} is missing shards")
            return Choice(model.paths, model)
    return Choice((file,))


def _by_patterns(
    files: Mapping[str, int], include: Sequence[str], exclude: Sequence[str], where: str
) -> Choice:
    # huggingface_hub's own allow_patterns / ignore_patterns semantics (fnmatch, '*' crosses '/').
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]  # lazy facade

    chosen = sorted(
        filter_repo_objects(
            files, allow_patterns=list(include) or None, ignore_patterns=list(exclude) or None
        )
    )
    if not chosen:
        raise ModelNotFoundError(f"no file in {where} matches the --include/--exclude patterns")
    return Choice(tuple(chosen))
