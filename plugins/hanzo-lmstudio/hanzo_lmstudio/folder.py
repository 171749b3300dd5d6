"""Where LM Studio keeps its models, and paths inside that folder that cannot escape it.

LM Studio indexes GGUF files exactly two levels below its models folder:
``<models>/<publisher>/<repo>/<file>.gguf``. The folder is found, first match wins:

1. ``LMSTUDIO_MODELS_DIR``;
2. the ``downloadsFolder`` setting in LM Studio's ``settings.json``: ``<home>/settings.json`` where
   ``<home>`` is ``~/.lmstudio`` (or the folder named in ``~/.lmstudio-home-pointer``), then the
   older app-data location (``~/.config/LM Studio`` on Linux, ``~/Library/Application Support/
   LM Studio`` on macOS, ``%APPDATA%/LM Studio`` on Windows);
3. ``~/.lmstudio/models``, or the older ``~/.cache/lm-studio/models`` when only that one exists.

These locations come from public reports of LM Studio installs, not from a specification: LM
Studio does not document its settings file. Relative ``downloadsFolder`` values are ignored
(what they are relative to is not known).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hanzo_cli.api import HanzoError

MODELS_DIR_ENV = "LMSTUDIO_MODELS_DIR"
#: Longest file or folder name accepted from a user or a server (common file-system limit).
MAX_COMPONENT = 255


@dataclass(frozen=True)
class ModelsFolder:
    """LM Studio's models folder and where that answer came from (shown to users)."""

    root: Path
    source: str


def models_folder() -> ModelsFolder:
    """The models folder LM Studio uses on this machine (see the module docstring)."""
    env = os.environ.get(MODELS_DIR_ENV, "").strip()
    if env:
        return ModelsFolder(Path(env).expanduser(), MODELS_DIR_ENV)
    for settings in _settings_files():
        folder = _downloads_folder(settings)
        if folder is not None:
            return ModelsFolder(folder, f"downloadsFolder in {settings}")
    default = Path.home() / ".lmstudio" / "models"
    legacy = Path.home() / ".cache" / "lm-studio" / "models"
    if not default.is_dir() and legacy.is_dir():
        return ModelsFolder(legacy, "LM Studio's older default")
    return ModelsFolder(default, "LM Studio's default")


def _lmstudio_home() -> Path:
    pointer = Path.home() / ".lmstudio-home-pointer"
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        target = ""
    return Path(target).expanduser() if target else Path.home() / ".lmstudio"


def _settings_files() -> list[Path]:
    files = [_lmstudio_home() / "settings.json"]
    if sys.platform == "darwin":
        files.append(Path.home() / "Library" / "Application Support" / "LM Studio" / "settings.json")
    elif sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        if appdata:
            files.append(Path(appdata) / "LM Studio" / "settings.json")
    else:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        files.append(Path(config) / "LM Studio" / "settings.json")
    return files


def _downloads_folder(settings: Path) -> Path | None:
    try:
        data = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or unreadable: LM Studio rewrites it, we just fall through
    value = data.get("downloadsFolder") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    folder = Path(value.strip()).expanduser()
    return folder if folder.is_absolute() else None


def check_component(part: str, what: str) -> str:
    """``part`` if it is one plain file or folder name, else a HanzoError.

    Refuses what could leave its parent folder or hide there: empty names, ``.``/``..``, leading
    dots, separators of any platform, control characters and over-long names.
    """
    bad = (
        not part
        or part.startswith(".")
        or len(part) > MAX_COMPONENT
        or any(c in part for c in "/\\:")
        or any(ord(c) < 32 or ord(c) == 127 for c in part)
    )
    if bad:
        raise HanzoError(f"unsafe {what} {part!r}: not a plain file or folder name")
    return part


def inside(root: Path, *parts: str) -> Path:
    """``root/parts…`` after checking each part and that the resolved path stays in ``root``.

    Resolving follows symlinks, so a link inside the folder that points elsewhere is refused
    as well as ``..``: nothing built from a name or a server's answer lands outside ``root``.
    """
    for part in parts:
        check_component(part, "path component")
    path = root.joinpath(*parts)
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise HanzoError(f"{path} leads outside LM Studio's models folder {root}")
    return path


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) is within ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False
