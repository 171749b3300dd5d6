"""The ``lmstudio`` provider: GGUF models in LM Studio's own folder.

Pulls resolve ``org/repo[:QUANT]`` on the Hugging Face Hub with the Hugging Face plugin and
download the files with hanzo's downloader (resumable, sha256-verified) straight into
``<models>/<org>/<repo>/``, where LM Studio finds them without downloading again. ``--via-lms``
hands the download to ``lms get`` instead. Names are described in :mod:`hanzo_lmstudio.names`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from hanzo_cli.api import (
    FileSource,
    HanzoError,
    MissingPluginError,
    ModelFile,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    PullOption,
    PullOptions,
    RemoteFile,
    file_source,
    is_mmproj,
    mtime,
    record_verified,
    side_files,
)
from hanzo_lmstudio.folder import ModelsFolder, inside, models_folder
from hanzo_lmstudio.library import (
    STAGED,
    LocalModel,
    models_in,
    remove,
    scan,
)
from hanzo_lmstudio.names import ModelName
from hanzo_lmstudio.server import ServerModel, entries_for, server_models


class LMStudioProvider(Provider):
    """LM Studio's models folder, filled from the Hugging Face Hub."""

    name = "lmstudio"
    prefixes = ("lms",)
    description = "GGUF models in LM Studio's folder, pulled from the Hugging Face Hub"
    priority = 30
    pull_options: ClassVar[Sequence[PullOption]] = (
        PullOption("file", ("--file",), "Pull this file of the repo (every shard of a split GGUF).", "NAME"),
        PullOption("revision", ("--revision",), "Branch, tag or commit (default: main).", "REV"),
        PullOption(
            "via_lms", ("--via-lms",), "Download with LM Studio's `lms get` instead of hanzo.", is_flag=True
        ),
    )

    def accepts(self, name: str) -> bool:
        try:
            ModelName.parse(name)
        except HanzoError:
            return False
        return True

    # --- reading the folder -------------------------------------------------------------------

    def list(self) -> Iterable[ModelInfo]:
        folder = models_folder()
        models = scan(folder.root)
        states = server_models() if models else None
        return [self._info(folder, model, states) for model in models]

    def get(self, name: str) -> ModelInfo | None:
        try:
            parsed = ModelName.parse(name)
        except HanzoError:
            return None
        folder = models_folder()
        model = self._find(folder, parsed)
        return None if model is None else self._info(folder, model, server_models())

    def delete(self, name: str) -> ModelInfo:
        folder = models_folder()
        model = self._find(folder, ModelName.parse(name))
        if model is None:
            raise ModelNotFoundError(f"model {name!r} not found in LM Studio's folder {folder.root}")
        states = server_models()
        loaded = [e.id for e in entries_for(model, states or []) if e.loaded]
        if loaded:
            raise HanzoError(
                f"{model.name} is loaded in LM Studio (as {loaded[0]}); "
                f"unload it first: lms unload {loaded[0]}"
            )
        info = self._info(folder, model, states)
        remove(folder.root, model, _written_beside)
        return info

    def _find(self, folder: ModelsFolder, name: ModelName) -> LocalModel | None:
        publisher, repo = _existing_folder(folder.root, name)
        matches = _select(models_in(folder.root, publisher, repo), name)
        if len(matches) > 1:
            choices = ", ".join(m.name for m in matches)
            raise HanzoError(f"{name} matches several LM Studio models ({choices}); name one of them")
        return matches[0] if matches else None

    def _info(
        self, folder: ModelsFolder, model: LocalModel, states: Sequence[ServerModel] | None
    ) -> ModelInfo:
        kinds = ["model"] + ["shard"] * (len(model.files) - 1) + ["projector"] * len(model.mmproj)
        files = [
            ModelFile(path, path.stat().st_size, kind=kind)
            for path, kind in zip([*model.files, *model.mmproj], kinds, strict=True)
        ]
        details: dict[str, Any] = {
            "publisher": model.publisher,
            "repo": model.repo,
            "file": model.path.name,
            "quantization": _quant(model),
            "format": "gguf",
            "models_dir": str(folder.root),
        }
        if len(model.files) > 1:
            details["shards"] = len(model.files)
        if not model.gguf.complete:
            details["complete"] = False  # shards are missing: LM Studio cannot load it
        if states is not None:
            matched = entries_for(model, states)
            details["loaded"] = any(e.loaded for e in matched)
            if matched:
                first = matched[0]
                details["lmstudio_id"] = first.id
                for key in ("type", "arch", "max_context_length"):
                    value = getattr(first, key)
                    if value is not None:
                        details[f"lmstudio_{key}"] = value
        return ModelInfo(
            provider=self.name,
            name=model.name,
            size=sum(f.size for f in files),
            path=model.path,
            modified_at=mtime(model.path),
            files=files,
            details=details,
        )

    # --- pulling ------------------------------------------------------------------------------

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        parsed = ModelName.parse(name)
        file = options.extra.get("file")
        revision = options.extra.get("revision")
        if file and (parsed.file or parsed.quant):
            raise HanzoError(f"give --file {file} or the {parsed.file or parsed.quant} in {name!r}, not both")
        folder = models_folder()
        if options.extra.get("via_lms"):
            if file or parsed.file or revision:
                raise HanzoError(
                    "with --via-lms, lms get chooses the file: name a quant instead (org/repo@q4_k_m)"
                )
            return self._pull_via_lms(folder, parsed, quiet=options.quiet)
        return self._pull_from_hub(folder, parsed, file=file or parsed.file, revision=revision)

    def _pull_from_hub(
        self, folder: ModelsFolder, name: ModelName, *, file: str | None, revision: str | None
    ) -> ModelInfo:
        from hanzo_cli.api import info

        hub = _hub()
        resolution = hub.resolve_files(name.repo_id, revision=revision, quant=name.quant, file=file)
        model, first = resolution.gguf, resolution.files[0].path
        if model is None and any(f.path.endswith(".safetensors") for f in resolution.files):
            # LM Studio loads GGUFs (and MLX conversions on Apple silicon), not a Transformers repo
            raise HanzoError(
                f"{resolution.where} is a safetensors (Transformers) model, which LM Studio cannot load; "
                f"pull it with: hanzo model:pull hf:{resolution.repo_id} (run by the mistralrs runtime)"
            )
        if model is None or is_mmproj(first):
            raise HanzoError(
                f"{resolution.where}: {first} is not a GGUF model; name one with :QUANT or --file"
            )
        if resolution.default_among:
            info(
                f"{resolution.repo_id}: using {model.label()} (default; available: "
                f"{resolution.default_among}); pick one with lmstudio:{resolution.repo_id}:QUANT"
            )
        # The Hub's spelling of the repo id (checked again: it comes from the server).
        publisher, repo = _existing_folder(folder.root, ModelName.parse(resolution.repo_id))
        targets = _targets(folder.root, publisher, repo, [f.path for f in resolution.files])
        # A file already in place (LM Studio's own download, lms get, an older hanzo) is used only
        # once verified against the Hub's size and sha256; a wrong one is set aside and fetched.
        found = [
            _verified_in_place(folder.root, t, f) for t, f in zip(targets, resolution.files, strict=True)
        ]
        # A split model appears all at once: shards are fetched (resumably) under a name LM Studio
        # ignores, then renamed into place once the last one is verified.
        staged = [t if len(targets) == 1 else t.with_name(t.name + STAGED) for t in targets]
        digests = [
            digest or hub.fetch_file(resolution, f, s)
            for digest, f, s in zip(found, resolution.files, staged, strict=True)
        ]
        for source, target, digest, was_there in zip(staged, targets, digests, found, strict=True):
            if not was_there:
                if source != target:
                    os.replace(source, target)
                record_verified(target, digest)
        pulled = next((m for m in models_in(folder.root, publisher, repo) if m.path == targets[0]), None)
        if pulled is None:  # pragma: no cover - we just wrote it; only a concurrent delete gets here
            raise HanzoError(f"{targets[0]} disappeared right after its download")
        pulled_info = self._info(folder, pulled, server_models())
        pulled_info.digest = f"sha256:{digests[0]}"
        pulled_info.details["source"] = f"hf:{resolution.repo_id}"
        pulled_info.details["commit"] = resolution.commit
        return pulled_info

    def _pull_via_lms(self, folder: ModelsFolder, name: ModelName, *, quiet: bool) -> ModelInfo:
        from hanzo_lmstudio.lms import lms_get

        before = {m.name for m in scan(folder.root)}
        lms_get(name, quiet=quiet)
        publisher, repo = _existing_folder(folder.root, name)
        matches = _select(models_in(folder.root, publisher, repo), name)
        if len(matches) > 1:  # the folder had other quants already: the new one is it
            matches = [m for m in matches if m.name not in before]
        elif not matches:  # lms may file it under another publisher (LM Studio's community copies)
            matches = [m for m in scan(folder.root) if m.name not in before]
        if len(matches) != 1:
            raise HanzoError(
                f"lms get finished, but hanzo cannot tell which model in {folder.root} it fetched for "
                f"{name}; see lms ls"
            )
        return self._info(folder, matches[0], server_models())


def _verified_in_place(root: Path, target: Path, file: RemoteFile) -> str | None:
    """The sha256 of ``target`` when it is already there and matches the Hub's size and sha256
    (hashed once, remembered while the file is unchanged), else None. A file that does not match
    is moved to ``<models>/.hanzo-corrupt/`` (LM Studio indexes only ``<publisher>/<repo>/*.gguf``)."""
    from hanzo_cli.api import file_digests, set_aside, verify_existing

    if not target.is_file():
        return None
    if verify_existing(target, file.sha256, file.size):
        return file.sha256 or file_digests(target)[0]
    set_aside(target, root / ".hanzo-corrupt", "does not match the Hub's size or sha256")
    return None


def _select(models: list[LocalModel], name: ModelName) -> list[LocalModel]:
    """The models of one folder that ``name`` designates."""
    if name.file:
        wanted = name.file.lower()
        return [m for m in models if any(f.name.lower() == wanted for f in m.files)]
    if name.quant:
        quant = name.quant
        return [m for m in models if m.gguf.matches(quant) or (_quant(m) or "").lower() == quant.lower()]
    return models


def _quant(model: LocalModel) -> str | None:
    """The quantization in the file name, else the GGUF header's file type (read only then)."""
    if model.quant:
        return model.quant
    from hanzo_cli.api import read_gguf_info

    try:
        return read_gguf_info(model.path).file_type
    except HanzoError:
        return None


def _existing_folder(root: Path, name: ModelName) -> tuple[str, str]:
    """``publisher/repo`` as spelled on disk when a folder matches it case-insensitively (Hub ids
    are case-insensitive; LM Studio keeps the Hub's spelling), else as given."""
    publisher = _child_named(root, name.publisher)
    repo = _child_named(inside(root, publisher), name.repo)
    return publisher, repo


def _child_named(folder: Path, name: str) -> str:
    try:
        with_case = [p.name for p in folder.iterdir() if p.name.lower() == name.lower()]
    except OSError:
        return name
    return name if name in with_case or len(with_case) != 1 else with_case[0]


def _targets(root: Path, publisher: str, repo: str, repo_paths: list[str]) -> list[Path]:
    """Where each Hub file goes: ``<models>/<publisher>/<repo>/<file name>``, checked.

    LM Studio reads GGUFs only directly in the repo folder, so files from Hub subfolders (split
    quantizations often live in ``Q8_0/…``) are flattened; the shards of one model always share a
    subfolder, so their names stay distinct. The names come from the server: one that is not a
    plain file name or resolves outside the folder (through a symlink planted there) is refused
    before a byte is written, and so is a symlink in place of the file or of one the download
    writes beside it.
    """
    targets: list[Path] = []
    for repo_path in repo_paths:
        target = inside(root, publisher, repo, PurePosixPath(repo_path).name)
        for written in (target, *_written_beside(target)):
            if inside(root, publisher, repo, written.name).is_symlink():
                raise HanzoError(f"{written} is a symlink; refusing to download through it")
        targets.append(target)
    return targets


def _hub() -> FileSource:
    """The Hugging Face provider's file resolution, through the interface it declares."""
    try:
        return file_source("huggingface")
    except MissingPluginError:
        raise MissingPluginError(
            "the lmstudio provider pulls from the Hugging Face Hub through the huggingface plugin; "
            "install it with: pip install 'hanzo-cli[huggingface]'"
        ) from None


def _written_beside(dest: Path) -> list[Path]:
    """What a pull may write next to ``dest``: the fetch's files in progress (for ``dest`` and for
    its staged name, used by split models), and the staged file itself."""
    try:
        side: Callable[[Path], list[Path]] = _hub().side_files
    except MissingPluginError:
        side = side_files  # the core downloader's own, all a pull could have left without the plugin
    staged = dest.with_name(dest.name + STAGED)
    return [*side(dest), staged, *side(staged)]
