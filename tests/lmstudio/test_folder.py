"""Finding LM Studio's models folder, and keeping paths inside it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hanzo_lmstudio.folder import inside, is_inside, models_folder

from hanzo_cli.errors import HanzoError


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])  # a fresh folder per test (tests/conftest.py)


def write_settings(path: Path, **settings: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": "dark", **settings}))


def test_default_is_dot_lmstudio_models(home: Path) -> None:
    folder = models_folder()
    assert folder.root == home / ".lmstudio" / "models"
    assert folder.source == "LM Studio's default"


def test_older_default_is_used_when_only_it_exists(home: Path) -> None:
    legacy = home / ".cache" / "lm-studio" / "models"
    legacy.mkdir(parents=True)
    assert models_folder().root == legacy
    (home / ".lmstudio" / "models").mkdir(parents=True)
    assert models_folder().root == home / ".lmstudio" / "models"


def test_environment_variable_wins(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_settings(home / ".lmstudio" / "settings.json", downloadsFolder=str(tmp_path / "from-settings"))
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "from-env"))
    folder = models_folder()
    assert folder.root == tmp_path / "from-env"
    assert folder.source == "LMSTUDIO_MODELS_DIR"


def test_downloads_folder_setting(home: Path, tmp_path: Path) -> None:
    settings = home / ".lmstudio" / "settings.json"
    write_settings(settings, downloadsFolder=str(tmp_path / "big-disk" / "models"))
    folder = models_folder()
    assert folder.root == tmp_path / "big-disk" / "models"
    assert str(settings) in folder.source


def test_home_pointer_moves_the_settings_file(home: Path, tmp_path: Path) -> None:
    moved = tmp_path / "portable" / ".lmstudio"
    write_settings(moved / "settings.json", downloadsFolder=str(tmp_path / "portable-models"))
    (home / ".lmstudio-home-pointer").write_text(f"{moved}\n")
    assert models_folder().root == tmp_path / "portable-models"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the Linux app-data location")
def test_older_app_data_settings(home: Path, tmp_path: Path) -> None:
    write_settings(home / ".config" / "LM Studio" / "settings.json", downloadsFolder="~/llms")
    assert models_folder().root == home / "llms"
    # ~/.lmstudio/settings.json is the newer place and wins
    write_settings(home / ".lmstudio" / "settings.json", downloadsFolder=str(tmp_path / "newer"))
    assert models_folder().root == tmp_path / "newer"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"downloadsFolder": 42}),
        json.dumps({"downloadsFolder": ""}),
        json.dumps({"downloadsFolder": "relative/models"}),
    ],
)
def test_unusable_settings_fall_through_to_the_default(home: Path, content: str) -> None:
    settings = home / ".lmstudio" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(content)
    assert models_folder().root == home / ".lmstudio" / "models"


@pytest.mark.parametrize(
    "part", ["..", ".", "", ".hidden", "a/b", "a\\b", "c:", "nul\x00", "tab\t", "x" * 256]
)
def test_inside_refuses_what_is_not_a_plain_name(tmp_path: Path, part: str) -> None:
    with pytest.raises(HanzoError):
        inside(tmp_path, "org", part)


def test_inside_refuses_symlinks_that_leave_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "models"
    outside = tmp_path / "outside"
    (root / "org").mkdir(parents=True)
    outside.mkdir()
    (root / "org" / "repo").symlink_to(outside)
    with pytest.raises(HanzoError, match="outside"):
        inside(root, "org", "repo", "model.gguf")
    assert not is_inside(root, root / "org" / "repo")
    # a link that stays inside is fine
    (root / "org" / "real").mkdir()
    (root / "org" / "alias").symlink_to(root / "org" / "real")
    assert inside(root, "org", "alias", "m.gguf") == root / "org" / "alias" / "m.gguf"
