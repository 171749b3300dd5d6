"""Finding LM Studio's models folder, and keeping paths inside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hanzo_lmstudio.folder import inside, is_inside, lmstudio_home, models_folder

from hanzo_cli.errors import HanzoError


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])  # a fresh folder per test (tests/conftest.py)


def write_settings(path: Path, **settings: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"theme": "dark", **settings}))


@pytest.fixture(autouse=True)
def no_lmstudio_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMSTUDIO_HOME", raising=False)


def test_default_is_dot_lmstudio_models(home: Path) -> None:
    folder = models_folder()
    assert folder.root == home / ".lmstudio" / "models"
    assert folder.source == "LM Studio's home (the default)"


def test_older_home_wins_whenever_it_exists(home: Path) -> None:
    """lmstudio-js findLMStudioHome: ~/.cache/lm-studio when that folder exists, even next to ~/.lmstudio."""
    (home / ".lmstudio" / "models").mkdir(parents=True)
    legacy = home / ".cache" / "lm-studio"
    legacy.mkdir(parents=True)
    assert models_folder().root == legacy / "models"
    assert lmstudio_home() == (legacy, "the older location")


def test_lmstudio_home_wins_over_the_pointer(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".lmstudio-home-pointer").write_text(str(tmp_path / "pointed"))
    (home / ".cache" / "lm-studio").mkdir(parents=True)
    monkeypatch.setenv("LMSTUDIO_HOME", str(tmp_path / "headless"))
    assert models_folder().root == tmp_path / "headless" / "models"
    write_settings(tmp_path / "headless" / "settings.json", downloadsFolder=str(tmp_path / "disk"))
    assert models_folder().root == tmp_path / "disk"


def test_pointer_wins_over_the_older_home(home: Path, tmp_path: Path) -> None:
    (home / ".cache" / "lm-studio").mkdir(parents=True)
    (home / ".lmstudio-home-pointer").write_text(f"{tmp_path / 'pointed'}\n")
    assert lmstudio_home()[0] == tmp_path / "pointed"
    assert models_folder().root == tmp_path / "pointed" / "models"
    (home / ".lmstudio-home-pointer").write_text("  \n")  # empty: as if absent
    assert lmstudio_home()[0] == home / ".cache" / "lm-studio"


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


def test_list_and_delete_use_the_same_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import hanzo_json, run_hanzo

    monkeypatch.setenv("LMSTUDIO_HOME", str(tmp_path / "headless"))
    gguf = tmp_path / "headless" / "models" / "pub" / "repo" / "m-Q8_0.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF" + bytes(60))
    listed = [m["name"] for m in hanzo_json("model:list", "--json") if m["provider"] == "lmstudio"]
    assert listed == ["pub/repo/m-Q8_0.gguf"]
    proc = run_hanzo("model:delete", "--yes", "lmstudio:pub/repo/m-Q8_0.gguf")
    assert proc.returncode == 0, proc.stderr
    assert not gguf.exists()


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
