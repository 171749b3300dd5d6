"""How GGUF files are named: quantizations, split shards, vision projectors, the default quant.

One set of rules for every provider, so ``org/repo:Q8_0`` means the same files on the Hub, in the
Hugging Face cache and in LM Studio's folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

#: Quants chosen when a name gives none, best first; otherwise the smallest model wins.
QUANT_PREFERENCE = ("Q8_0", "Q5_K_M", "Q4_K_M")

# llama.cpp's gguf-split naming: model-Q8_0-00001-of-00003.gguf
_SHARD = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)
# A quant at the end of a file stem: ...-Q8_0, ....Q4_K_M, ..._f16, ...-UD-Q4_K_XL, ...-IQ2_XXS
_QUANT = r"I?Q\d+(?:_[A-Z0-9]+)*|TQ\d+_\d+|B?F16|F32|FP16|FP32|MXFP4(?:_MOE)?"
_QUANT_AT_END = re.compile(rf"(?:^|[-._])(?P<quant>{_QUANT})$", re.IGNORECASE)
_QUANT_ONLY = re.compile(_QUANT, re.IGNORECASE)


def is_gguf_name(path: str) -> bool:
    """Whether a file name says GGUF (``.gguf``); :func:`hanzo_cli.gguf.has_gguf_magic` reads the file."""
    return path.lower().endswith(".gguf")


def is_mmproj(path: str) -> bool:
    """Whether a GGUF is a vision projector (``mmproj-*.gguf``): it goes with a model, it is not one."""
    return "mmproj" in PurePosixPath(path).name.lower()


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
        if not is_gguf_name(path) or is_mmproj(path):
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


def default_model(models: list[GGUFModel]) -> GGUFModel | None:
    """The model a name without a quant means: the first of QUANT_PREFERENCE among complete models,
    else the smallest complete one."""
    complete = [m for m in models if m.complete] or models
    if not complete:
        return None
    for quant in QUANT_PREFERENCE:
        for model in complete:
            if model.quant == quant:
                return model
    return min(complete, key=lambda m: (m.size, m.first))


def available(models: Iterable[GGUFModel]) -> str:
    """``"F16, Q4_K_M, Q8_0"``: what a user may put after the colon."""
    return ", ".join(sorted({m.label() for m in models}))
