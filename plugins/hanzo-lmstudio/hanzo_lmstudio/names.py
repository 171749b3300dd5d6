"""Names of LM Studio models as users type them.

* ``publisher/repo/file.gguf`` — one file, as ``model:list`` shows it (LM Studio's own path);
* ``publisher/repo:QUANT`` or ``publisher/repo@quant`` — the model of that quantization
  (``Q8_0``, ``q4_k_m``: case does not matter);
* ``publisher/repo`` — the only model of the folder (pull: the Hub plugin's default choice).

``publisher/repo`` is the Hugging Face repository id for pulls, and the folder LM Studio keeps the
files in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hanzo_cli.api import HanzoError, is_gguf_name
from hanzo_lmstudio.folder import check_component

_QUANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Folder names may hold more than Hub ids allow, but never the separators of this grammar.
_FORBIDDEN = "@:"


@dataclass(frozen=True)
class ModelName:
    """A parsed name: folder ``publisher/repo`` plus at most one of ``quant`` and ``file``."""

    publisher: str
    repo: str
    quant: str | None = None
    file: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelName:
        name = text.strip()
        parts = name.split("/")
        if len(parts) == 3:
            publisher, repo, file = parts
            if not is_gguf_name(file):
                raise HanzoError(f"{text!r}: the third part of an LM Studio name is a .gguf file")
            return cls(_part(publisher, text), _part(repo, text), file=check_component(file, "file name"))
        if len(parts) != 2:
            raise HanzoError(f"LM Studio names are org/repo[:QUANT] or org/repo/file.gguf, not {text!r}")
        publisher, rest = parts
        quant: str | None = None
        for sep in ":@":
            if sep in rest:
                rest, quant = rest.split(sep, 1)
                if not _QUANT_RE.match(quant):
                    raise HanzoError(f"{text!r}: {quant!r} is not a quantization name (Q8_0, q4_k_m, …)")
                break
        return cls(_part(publisher, text), _part(rest, text), quant=quant)

    @property
    def repo_id(self) -> str:
        return f"{self.publisher}/{self.repo}"

    def __str__(self) -> str:
        if self.file:
            return f"{self.repo_id}/{self.file}"
        return f"{self.repo_id}:{self.quant}" if self.quant else self.repo_id


def _part(part: str, text: str) -> str:
    if not part or any(c in part for c in _FORBIDDEN):
        raise HanzoError(f"{text!r} is not a valid LM Studio model name")
    return check_component(part, "name part")
