"""GGUF metadata (architecture, sizes, quantization) read with the ``gguf`` package."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hanzo_cli.errors import HanzoError

GGUF_MAGIC = b"GGUF"
POOLING_TYPES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


@dataclass
class GGUFInfo:
    architecture: str | None = None
    name: str | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    head_count: int | None = None
    file_type: str | None = None
    parameter_count: int | None = None
    pooling_type: str | None = None
    tokenizer: str | None = None
    tensor_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _scalar(field_: Any) -> Any:
    try:
        value = field_.contents()
    except Exception:  # noqa: BLE001 - malformed fields are reported as missing
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    return None


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read a GGUF file's header. Raises HanzoError for files that are not valid GGUF."""
    if not is_gguf(path):
        raise HanzoError(f"{path} is not a GGUF file")
    try:
        import gguf

        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:  # noqa: BLE001 - gguf raises ValueError/IndexError/… on bad files
        raise HanzoError(f"cannot read GGUF metadata from {path}: {exc}") from None

    meta = {
        key: value
        for key, f in reader.fields.items()
        if not key.startswith("tokenizer.ggml.") and (value := _scalar(f)) is not None
    }
    arch = meta.get("general.architecture")

    def arch_key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}") if arch else None

    file_type = meta.get("general.file_type")
    file_type_name: str | None = None
    if isinstance(file_type, int):
        try:
            file_type_name = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
            file_type_name = file_type_name.removeprefix("ALL_")
        except ValueError:
            file_type_name = str(file_type)
    params = meta.get("general.parameter_count")
    if not isinstance(params, int):
        params = sum(int(t.n_elements) for t in reader.tensors) or None
    pooling = arch_key("pooling_type")
    tok = reader.fields.get("tokenizer.ggml.model")
    return GGUFInfo(
        architecture=arch if isinstance(arch, str) else None,
        name=meta.get("general.name"),
        context_length=arch_key("context_length"),
        embedding_length=arch_key("embedding_length"),
        block_count=arch_key("block_count"),
        head_count=arch_key("attention.head_count"),
        file_type=file_type_name,
        parameter_count=params,
        pooling_type=POOLING_TYPES.get(pooling, str(pooling)) if pooling is not None else None,
        tokenizer=_scalar(tok) if tok is not None else None,
        tensor_count=len(reader.tensors),
        metadata=meta,
    )
