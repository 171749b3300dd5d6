"""hanzo-hashembed: a complete runtime plugin. Feature-hashing embeddings for "hashembed" GGUFs."""

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hanzo_cli.api import ModelFileError, Runtime, hookimpl, read_gguf_info


class HashEmbedder:
    """Each word adds +1 or -1 at a position its sha256 picks: deterministic, no weights needed."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]  # hanzo normalises them

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % self.dimensions] += 1.0 if digest[4] & 1 else -1.0
        return vector

    def close(self) -> None:
        pass


class HashEmbedRuntime(Runtime):
    name = "hashembed"
    description = "feature-hashing embeddings (the plugin guide's example runtime)"
    tasks = frozenset({"embed"})
    architectures = frozenset({"hashembed"})  # the GGUF's general.architecture

    def available(self) -> bool:
        return True  # pure Python; a runtime wrapping a library checks that it imports

    def load_embedder(self, path: Path, **options: Any) -> HashEmbedder:
        dimensions = read_gguf_info(path).embedding_length  # hashembed.embedding_length
        if not dimensions:
            raise ModelFileError(f"{path} declares no hashembed.embedding_length")
        return HashEmbedder(dimensions)


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(HashEmbedRuntime())
