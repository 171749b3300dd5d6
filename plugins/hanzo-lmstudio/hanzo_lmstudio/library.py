"""The GGUF models in LM Studio's folder: finding them, naming them, removing them.

A model is one GGUF file, or the shards of a split GGUF (``…-00001-of-00003.gguf``), in
``<models>/<publisher>/<repo>/``. Files are grouped and quantizations read from file names by the
core's GGUF naming rules (``hanzo_cli.api.gguf_models``), so ``org/repo:Q8_0`` means the same model
in both providers. Vision
projectors (``mmproj…gguf``) are not models of their own: they belong to every model of their
folder, and go with the last of them.

A model's name is LM Studio's own path for it, ``publisher/repo/file.gguf`` (the first shard for
split models): unique, and what ``lms ps`` shows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hanzo_cli.api import GGUFModel, HanzoError, gguf_models, is_gguf_name, is_mmproj
from hanzo_lmstudio.folder import inside, is_inside

#: Shards of a split model wait under this suffix until every shard is verified (LM Studio only
#: lists ``*.gguf``, so it never sees half a model).
STAGED = ".staged"


@dataclass
class LocalModel:
    """One model in LM Studio's folder: its GGUF file(s), and the projectors beside it."""

    publisher: str
    repo: str
    folder: Path
    gguf: GGUFModel  # paths relative to ``folder``
    mmproj: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """The model's GGUF files, shards in order (the first is the one to load)."""
        return [self.folder / name for name in self.gguf.paths]

    @property
    def path(self) -> Path:
        return self.folder / self.gguf.first

    @property
    def name(self) -> str:
        return f"{self.publisher}/{self.repo}/{self.gguf.first}"

    @property
    def quant(self) -> str | None:
        return self.gguf.quant


def scan(root: Path) -> list[LocalModel]:
    """Every model in the folder, sorted by name. A missing folder holds no models."""
    models: list[LocalModel] = []
    for publisher in _subdirs(root, root):
        for repo in _subdirs(root, publisher):
            models.extend(models_in(root, publisher.name, repo.name))
    return sorted(models, key=lambda m: m.name.lower())


def models_in(root: Path, publisher: str, repo: str) -> list[LocalModel]:
    """The models of one ``publisher/repo`` folder (none when it does not exist)."""
    folder = inside(root, publisher, repo)
    ggufs = [f for f in _entries(root, folder) if is_gguf_name(f.name) and f.is_file()]
    mmproj = [f for f in ggufs if is_mmproj(f.name)]
    sizes = {f.name: f.stat().st_size for f in ggufs if not is_mmproj(f.name)}
    models = [LocalModel(publisher, repo, folder, model, mmproj) for model in gguf_models(sizes)]
    return sorted(models, key=lambda m: m.name.lower())


def _entries(root: Path, folder: Path) -> Iterator[Path]:
    """Visible entries of ``folder`` that resolve inside ``root`` (links out are ignored)."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise HanzoError(f"cannot read {folder}: {exc.strerror}") from None
    for name in names:
        path = folder / name
        if not name.startswith(".") and is_inside(root, path):
            yield path


def _subdirs(root: Path, folder: Path) -> Iterator[Path]:
    return (p for p in _entries(root, folder) if p.is_dir())


def remove(root: Path, model: LocalModel, written_beside: Callable[[Path], list[Path]]) -> None:
    """Delete ``model``'s files (and its projectors unless another model of the folder remains),
    the download leftovers ``written_beside`` each of them, and the folders this leaves empty."""
    siblings = [m for m in models_in(root, model.publisher, model.repo) if m.name != model.name]
    doomed = [f.name for f in model.files] + ([] if siblings else [f.name for f in model.mmproj])
    leftovers = [side.name for name in doomed for side in written_beside(model.folder / name)]
    for name in doomed + leftovers:
        # Re-checked per file: the folder may have changed since it was scanned.
        with contextlib.suppress(FileNotFoundError):
            inside(root, model.publisher, model.repo, name).unlink()
    for folder in (model.folder, model.folder.parent):
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (other files or models) or already gone: keep it and its parent
