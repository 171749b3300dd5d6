"""Where LM Studio keeps its models, and paths inside that folder that cannot escape it.

LM Studio indexes GGUF files exactly two levels below its models folder:
``<models>/<publisher>/<repo>/<file>.gguf``. The folder is found as LM Studio's own tools find it
(first match wins), for pulling, listing and deleting alike:

1. ``LMSTUDIO_MODELS_DIR``: hanzo's explicit override (LM Studio does not read it);
2. LM Studio's home, as lmstudio-js ``findLMStudioHome.ts`` and lms (``importCmd.ts``) resolve it:
   ``LMSTUDIO_HOME``; else the path in ``~/.lmstudio-home-pointer`` (when the file is not empty;
   a relative path is taken from the home directory); else ``~/.cache/lm-studio`` when that folder
   exists (the older location); else ``~/.lmstudio``. hanzo only reads the pointer file: LM Studio
   writes it.
3. In that home: the ``downloadsFolder`` setting of ``<home>/settings.json`` (an absolute path;
   relative values are ignored, what they are relative to is not documented), else
   ``<home>/models``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hanzo_cli.api import HanzoError

MODELS_DIR_ENV = "LMSTUDIO_MODELS_DIR"
HOME_ENV = "LMSTUDIO_HOME"
POINTER_FILE = ".lmstudio-home-pointer"
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
    home, how = lmstudio_home()
    settings = home / "settings.json"
    folder = _downloads_folder(settings)
    if folder is not None:
        return ModelsFolder(folder, f"downloadsFolder in {settings}")
    return ModelsFolder(home / "models", f"LM Studio's home ({how})")


def lmstudio_home() -> tuple[Path, str]:
    """LM Studio's home folder and which rule found it (lmstudio-js ``findLMStudioHome.ts``)."""
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser(), HOME_ENV
    user_home = Path.home()
    pointer = user_home / POINTER_FILE
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        target = ""
    if target:
        return user_home / Path(target).expanduser(), f"named in {pointer}"
    legacy = user_home / ".cache" / "lm-studio"
    if legacy.is_dir():
        return legacy, "the older location"
    return user_home / ".lmstudio", "the default"


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
