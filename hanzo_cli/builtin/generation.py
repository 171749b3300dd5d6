"""Text-generation models, loaded in-process: from a reference to a :class:`Generator` (used by
``hanzo run`` and the node). The runtime is chosen as for embeddings, for the ``generate`` task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hanzo_cli.api import Generator, GGUFInfo, HanzoError, ModelInfo, Runtime, has_gguf_magic, read_gguf_info


@dataclass
class GenerationModel:
    """A loaded generator and what it is."""

    info: ModelInfo
    gguf: GGUFInfo
    runtime: Runtime
    generator: Generator = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.info.provider}:{self.info.name}"

    def close(self) -> None:
        self.generator.close()


def load_generation_model(
    ref: str, *, runtime: str | None = None, pull: bool = True, runtime_options: dict[str, Any] | None = None
) -> GenerationModel:
    """Load ``ref`` for generation, pulling it first when missing and ``pull`` is true."""
    from hanzo_cli import models  # reference resolution and runtime choice are not public API yet
    from hanzo_cli.embedding import select_runtime

    info = models.ensure(ref) if pull else models.find(ref)
    if info is None or info.path is None:
        raise HanzoError(f"model {ref!r} is not pulled (pull it with: hanzo model:pull {ref})")
    path = info.path
    if not path.is_file() or not has_gguf_magic(path):
        raise HanzoError(f"{info.provider}:{info.name} is not a GGUF file: generation runs GGUF models")
    gguf = read_gguf_info(path)
    if gguf.pooling_type:
        raise HanzoError(
            f"{info.provider}:{info.name} is an embedding model ({gguf.pooling_type} pooling): it does not "
            "generate text"
        )
    chosen = select_runtime(gguf.architecture, "generate", runtime)
    try:
        generator = chosen.load_generator(path, **(runtime_options or {}))
    except HanzoError:
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime's library error, as one line
        raise HanzoError(f"runtime {chosen.name} cannot load {info.provider}:{info.name}: {exc}") from None
    return GenerationModel(info, gguf, chosen, generator)
