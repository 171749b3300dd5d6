"""Which files of a repo a name means: one GGUF model (a quant, all shards of a split model), one
file, a snapshot filtered by patterns, or, for a Transformers model repo (config.json and
safetensors weights), the files a runtime loads.

The same rules apply to a repo's listing on the Hub (when pulling) and to a cached snapshot (when
showing, deleting or pulling offline), so a name means the same files in both places.
"""

from __future__ import annotations

import re
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

#: What a runtime loads from a Transformers model repo's top level: the config, the tokenizer in each
#: of its forms, and the sentence-transformers pipeline. Weights are chosen apart (safetensors first).
RUNTIME_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
        "chat_template.json",
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
    }
)
#: A sentence-transformers module folder (``1_Pooling``, ``2_Dense``, ``2_Normalize``).
_MODULE_FOLDER = re.compile(r"\d+_[A-Za-z]+")
_SAFETENSORS_WEIGHTS = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json")
_PYTORCH_WEIGHTS = re.compile(r"pytorch_model(-\d{5}-of-\d{5})?\.bin|pytorch_model\.bin\.index\.json")


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
    the default quant of a GGUF repo, the runtime files of a Transformers model repo (see
    :func:`runtime_files`), or every file of any other repo. ``where`` names the repo in
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
        return Choice(runtime_files(files) or tuple(sorted(files)))
    best = default_model(models)
    assert best is not None  # models is not empty
    chosen = _one(models, [best], best.quant or best.label(), where)
    return Choice(chosen.paths, chosen.model, default_among=available(models))


def runtime_files(files: Mapping[str, int] | Sequence[str]) -> tuple[str, ...]:
    """The files a runtime loads from a Transformers model repo: config, tokenizer, the weights
    (safetensors shards and index; PyTorch ``.bin`` only when there is no safetensors) and the
    sentence-transformers module configs. Not the other formats repos carry beside them (ONNX,
    OpenVINO, GGUF, TensorFlow, Flax) nor training state. Empty when ``files`` is no such repo
    (no top-level config.json or no weights)."""
    top = {p for p in files if "/" not in p}
    weights = sorted(p for p in top if _SAFETENSORS_WEIGHTS.fullmatch(p)) or sorted(
        p for p in top if _PYTORCH_WEIGHTS.fullmatch(p)
    )
    if "config.json" not in top or not any(not p.endswith(".json") for p in weights):
        return ()
    modules = [
        p
        for p in files
        if p.count("/") == 1
        and _MODULE_FOLDER.fullmatch(p.split("/")[0])
        and (p.endswith("/config.json") or p.endswith(".safetensors"))
    ]
    return tuple(sorted({*(p for p in top if p in RUNTIME_FILES), *weights, *modules}))


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
