"""Model references as users type them: ``[provider:]name``.

The provider prefix is recognised only when it is a known provider name or prefix, so names that
contain colons of their own (``dengcao/Qwen3-Embedding-8B:Q5_K_M``, ``127.0.0.1:5000/ns/m:tag``)
pass through untouched to the provider, which parses the rest with its own grammar.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from hanzo_cli.errors import HanzoError

# Printable, no whitespace: names reach file systems and URLs, so refuse control characters early.
_VALID = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
MAX_REF_LENGTH = 1024


@dataclass(frozen=True)
class ModelRef:
    provider: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}" if self.provider else self.name


def parse_ref(text: str, prefixes: Collection[str]) -> ModelRef:
    """Split ``text`` into an optional provider prefix and the provider-specific name.

    ``prefixes`` are the lower-case provider names and prefixes that may start a reference
    (installed or merely known, so a missing plugin can be named in the error).
    """
    ref = text.strip()
    if not ref:
        raise HanzoError("empty model reference")
    if len(ref) > MAX_REF_LENGTH:
        raise HanzoError(f"model reference is longer than {MAX_REF_LENGTH} characters")
    if not _VALID.match(ref):
        raise HanzoError(f"model reference {text!r} contains whitespace or control characters")
    head, sep, rest = ref.partition(":")
    if sep and head.lower() in prefixes:
        if not rest:
            raise HanzoError(f"model reference {ref!r} names provider {head!r} but no model")
        return ModelRef(head.lower(), rest)
    return ModelRef(None, ref)
