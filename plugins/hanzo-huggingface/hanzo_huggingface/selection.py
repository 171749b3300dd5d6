"""Which files of a repo a name means: one GGUF model (a quant, all shards of a split model), one
file, or a snapshot filtered by patterns.

The same rules apply to a repo's listing on the Hub (when pulling) and to a cached snapshot (when
showing, deleting or pulling offline), so a name means the same files in both places.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from hanzo_cli.errors import HanzoError, NotFoundError

#: Quants chosen when a name gives none, best first; otherwise the smallest model wins.
QUANT_PREFERENCE = ("Q8_0", "Q5_K_M", "Q4_K_M")

# llama.cpp's gguf-split naming: model-Q8_0-00001-of-00003.gguf
_SHARD = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)
# A quant at the end of a file stem: ...-Q8_0, ....Q4_K_M, ..._f16, ...-UD-Q4_K_XL, ...-IQ2_XXS
_QUANT = r"I?Q\d+(?:_[A-Z0-9]+)*|TQ\d+_\d+|B?F16|F32|FP16|FP32|MXFP4(?:_MOE)?"
_QUANT_AT_END = re.compile(rf"(?:^|[-._])(?P<quant>{_QUANT})$", re.IGNORECASE)
_QUANT_ONLY = re.compile(_QUANT, re.IGNORECASE)


def is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def _stem(path: str) -> str:
    """The file name without ``.gguf`` and without a ``-0000N-of-0000M`` shard suffix."""
    name = PurePosixPath(path).name
    shard = _SHARD.fullmatch(name)
    return shard.group("stem") if shard else name[: -len(".gguf")]


def quant_of(path: str) -> str | None:
    """The quantization a GGUF file name carries (upper case), e.g. Q8_0; else its folder's name if that
    is a quant (``Q8_0/model-00001-of-00002.gguf``); else None."""
    found = _QUANT_AT_END.search(_stem(path))
    if found:
        return found.group("quant").upper()
    folder = PurePosixPath(path).parent.name
    return folder.upper() if _QUANT_ONLY.fullmatch(folder) else None


@dataclass(frozen=True)
class GGUFModel:
    """One loadable GGUF model: a single file, or every shard of a split model (in order)."""

    paths: tuple[str, ...]
    quant: str | None
    size: int
    complete: bool  # False when shards of a split model are missing

    @property
    def first(self) -> str:
        """The file llama.cpp is given (it finds the other shards itself)."""
        return self.paths[0]

    def matches(self, quant: str) -> bool:
        """Whether ``quant`` (case-insensitive) names this model: its quant, or its file name's ending."""
        wanted = quant.lower()
        stem = _stem(self.first).lower()
        return (self.quant or "").lower() == wanted or stem.endswith(
            (f"-{wanted}", f".{wanted}", f"_{wanted}")
        )

    def label(self) -> str:
        return self.quant or self.first


def gguf_models(files: Mapping[str, int]) -> list[GGUFModel]:
    """The GGUF models among ``files`` (path -> size), split shards grouped, sorted by first path."""
    groups: dict[tuple[str, str, int], dict[int, str]] = {}
    models: list[GGUFModel] = []
    for path in files:
        if not is_gguf(path) or "mmproj" in PurePosixPath(path).name.lower():
            continue  # vision projectors (mmproj-*.gguf) go with a model; they are not one
        parent = str(PurePosixPath(path).parent)
        shard = _SHARD.fullmatch(PurePosixPath(path).name)
        if shard is None:
            models.append(GGUFModel((path,), quant_of(path), files[path], complete=True))
            continue
        key = (parent, shard.group("stem"), int(shard.group("count")))
        groups.setdefault(key, {})[int(shard.group("index"))] = path
    for (_, _, count), shards in groups.items():
        paths = tuple(shards[i] for i in sorted(shards))
        complete = sorted(shards) == list(range(1, count + 1))
        models.append(GGUFModel(paths, quant_of(paths[0]), sum(files[p] for p in paths), complete))
    return sorted(models, key=lambda m: m.first)


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
    errors. Raises NotFoundError when nothing matches, HanzoError when a choice is ambiguous."""
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
            raise NotFoundError(f"{where} has no files")
        return Choice(tuple(sorted(files)))
    complete = [m for m in models if m.complete] or models
    preferred = next((q for q in QUANT_PREFERENCE if any(m.quant == q for m in complete)), None)
    if preferred:
        chosen = _one(models, [m for m in complete if m.quant == preferred], preferred, where)
    else:
        smallest = min(complete, key=lambda m: (m.size, m.first))
        chosen = _one(models, [smallest], smallest.label(), where)
    return Choice(chosen.paths, chosen.model, default_among=available(models))


def _one(models: list[GGUFModel], matching: list[GGUFModel], quant: str, where: str) -> Choice:
    if not models:
        raise NotFoundError(f"{where} has no GGUF files; leave out :{quant} to get the whole repo")
    if not matching:
        raise NotFoundError(f"{where} has no {quant} GGUF (available: {available(models)})")
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
        raise NotFoundError(f"file {file!r} not found in {where}{hint}")
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
        raise NotFoundError(f"no file in {where} matches the --include/--exclude patterns")
    return Choice(tuple(chosen))


def available(models: Iterable[GGUFModel]) -> str:
    """``"F16, Q4_K_M, Q8_0"``: what a user may put after the colon."""
    return ", ".join(sorted({m.label() for m in models}))
