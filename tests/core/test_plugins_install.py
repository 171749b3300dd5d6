"""``hanzo plugins:install`` / ``plugins:uninstall`` with the real pip, in a throwaway venv.

The venv gets hanzo-cli from this checkout (editable, no dependencies) and sees the test
environment's third-party packages (click, pluggy, pip, setuptools …) through a ``.pth`` file, but
none of hanzo's own distributions: what ``hanzo plugins`` lists there, pip put there. pip runs with no
index (``PIP_NO_INDEX``) and no build isolation, so nothing leaves the machine and the user's
environment is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "plugin_example"


def _is_ours(name: str) -> bool:
    return name.lower().replace("_", "-").startswith("hanzo")


def _third_party_view(dest: Path) -> Path:
    """A folder of symlinks to every installed package except hanzo's own distributions."""
    ours: set[str] = set()
    for dist in distributions():
        if _is_ours(dist.metadata["Name"] or ""):
            ours.update(Path(str(f)).parts[0] for f in dist.files or [])
    dest.mkdir()
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(site).iterdir():
            name = entry.name
            if name in ours or _is_ours(name) or name.endswith(".pth") or name.startswith("__editable__"):
                continue
            if not (dest / name).exists():
                (dest / name).symlink_to(entry)
    return dest


@dataclass
class Venv:
    root: Path
    site: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def hanzo(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "hanzo_cli", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def hanzo_json(self, *args: str) -> Any:
        proc = self.hanzo(*args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def contents(self) -> list[tuple[str, int]]:
        """Every file under site-packages with its size: what a half-done install would change."""
        return sorted(
            (str(path.relative_to(self.site)), path.stat().st_size)
            for path in self.site.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )

    def plugin_names(self) -> list[str]:
        return [row["name"] for row in self.hanzo_json("plugins", "--json")]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("plugins-venv")
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = subprocess.run(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = Path(purelib)
    deps = _third_party_view(base / "third-party")
    (site / "zz_third_party.pth").write_text(f"{deps}\n")  # after the venv's own site-packages
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's spelling of --no-build-isolation
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        HANZO_HOME=str(base / "hanzo"),
        HOME=str(base / "home"),
    )
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT)],
        check=True,
        env=env,
    )
    yield Venv(root, site, env)


def test_the_venv_starts_without_plugins(venv: Venv) -> None:
    assert "hanzo-webfolder" not in {n for n, _ in venv.contents()}
    assert venv.hanzo_json("plugins", "--json") == []


def test_a_failed_install_changes_nothing(venv: Venv) -> None:
    before = venv.contents()
    # The example plugin alone would install: pip resolves everything before changing anything.
    proc = venv.hanzo("plugins:install", "-e", str(EXAMPLE), "hanzo-no-such-plugin")
    assert_one_line_error(proc, "pip could not install", "hanzo-no-such-plugin", "nothing was changed")
    assert venv.contents() == before
    assert "webfolder" not in venv.plugin_names()


def test_first_party_names_map_to_their_pinned_distribution(venv: Venv) -> None:
    from hanzo_cli import __version__

    before = venv.contents()
    proc = venv.hanzo("plugins:install", "ollama")
    assert_one_line_error(proc, f"hanzo-ollama=={__version__}", "nothing was changed")
    assert venv.contents() == before


def test_not_a_requirement_is_a_usage_error(venv: Venv) -> None:
    assert_one_line_error(venv.hanzo("plugins:install", "--", "-rf"), "not a package name", code=2)
    assert_one_line_error(venv.hanzo("plugins:install"), "name at least one plugin", code=2)


def test_install_editable_plugin_then_it_is_listed_then_uninstall(venv: Venv) -> None:
    proc = venv.hanzo("plugins:install", "-e", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert "installed hanzo-webfolder 0.1.0: plugin webfolder" in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("Warning: ")], proc.stderr
    rows = {row["name"]: row for row in venv.hanzo_json("plugins", "--json")}
    assert rows["webfolder"]["distribution"] == "hanzo-webfolder"
    assert rows["webfolder"]["hooks"] == ["register_providers"]

    # Without --yes and without a terminal, nothing is removed.
    assert_one_line_error(venv.hanzo("plugins:uninstall", "hanzo-webfolder"), "--yes")
    assert "webfolder" in venv.plugin_names()
    proc = venv.hanzo("plugins:uninstall", "hanzo-webfolder", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "uninstalled hanzo-webfolder 0.1.0" in proc.stderr
    assert "webfolder" not in venv.plugin_names()
    assert_one_line_error(venv.hanzo("plugins:uninstall", "hanzo-webfolder", "--yes"), "not installed")


def test_a_package_without_a_hanzo_entry_point_is_installed_with_a_warning(
    venv: Venv, tmp_path: Path
) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    (project / "plain_tool.py").write_text("VALUE = 1\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "plain-tool"
            version = "2.0"

            [tool.setuptools]
            py-modules = ["plain_tool"]
            """
        )
    )
    proc = venv.hanzo("plugins:install", str(project))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == ["Warning: plain-tool 2.0 registers no 'hanzo' entry point: hanzo will not load it"]
    assert ("plain_tool.py", len("VALUE = 1\n")) in venv.contents()
    assert venv.plugin_names() == []
    proc = venv.hanzo("plugins:uninstall", "plain-tool", "-y")
    assert proc.returncode == 0, proc.stderr
    assert not any(name == "plain_tool.py" for name, _ in venv.contents())


def test_hanzo_and_its_dependencies_cannot_be_uninstalled(venv: Venv) -> None:
    before = venv.contents()
    assert_one_line_error(venv.hanzo("plugins:uninstall", "Hanzo_CLI", "--yes"), "hanzo itself", code=2)
    assert_one_line_error(venv.hanzo("plugins:uninstall", "click", "--yes"), "dependency of hanzo", code=2)
    assert venv.contents() == before


def _project(
    folder: Path, name: str, version: str, dependencies: list[str], setup_error: bool = False
) -> Path:
    folder.mkdir(parents=True)
    module = name.replace("-", "_")
    (folder / f"{module}.py").write_text("VALUE = 1\n")
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            dependencies = [{deps}]

            [tool.setuptools]
            py-modules = ["{module}"]
            """
        )
    )
    if setup_error:  # setuptools runs setup.py while it prepares metadata: the build fails
        (folder / "setup.py").write_text("raise SystemExit('this package does not build')\n")
    return folder


def test_a_build_failure_changes_nothing(venv: Venv, tmp_path: Path) -> None:
    broken = _project(tmp_path / "broken", "broken-plugin", "1.0", [], setup_error=True)
    before = venv.contents()
    proc = venv.hanzo("plugins:install", "-e", str(EXAMPLE), str(broken))
    assert_one_line_error(
        proc, "did not run successfully: this package does not build", "nothing was changed"
    )
    assert venv.contents() == before


def test_an_install_never_replaces_hanzo_itself(venv: Venv, tmp_path: Path) -> None:
    """A plugin that needs another hanzo-cli fails, even when that hanzo-cli is there to take."""
    wheelhouse = tmp_path / "wheelhouse"
    impostor = _project(tmp_path / "impostor", "hanzo-cli", "2.0.0", [])
    subprocess.run(
        [venv.python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheelhouse), str(impostor)],
        check=True,
        env=venv.env,
    )
    needs_two = _project(tmp_path / "needs-two", "needs-hanzo-two", "1.0", ["hanzo-cli>=2"])
    before = venv.contents()
    env = {**venv.env, "PIP_FIND_LINKS": str(wheelhouse)}
    proc = subprocess.run(
        [venv.python, "-m", "hanzo_cli", "plugins:install", str(needs_two)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert_one_line_error(proc, "conflicting dependencies", "keeps hanzo-cli at", "nothing was changed")
    assert venv.contents() == before
    assert venv.hanzo("--version").stdout.split()[-1] != "2.0.0"


def _wheel(venv: Venv, project: Path, wheelhouse: Path) -> None:
    subprocess.run(
        [venv.python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheelhouse), str(project)],
        check=True,
        env=venv.env,
    )


def _hanzo_with_links(venv: Venv, wheelhouse: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv.python, "-m", "hanzo_cli", *args],
        capture_output=True,
        text=True,
        env={**venv.env, "PIP_FIND_LINKS": str(wheelhouse)},
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_a_first_party_short_name_installs_its_distribution(venv: Venv, tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    _wheel(venv, ROOT / "plugins" / "hanzo-ollama", wheelhouse)  # what the index would serve
    proc = _hanzo_with_links(venv, wheelhouse, "plugins:install", "ollama")
    assert proc.returncode == 0, proc.stderr
    from hanzo_cli import __version__

    assert f"installed hanzo-ollama {__version__}: plugin ollama" in proc.stderr
    rows = {row["name"]: row for row in venv.hanzo_json("plugins", "--json")}
    assert rows["ollama"]["distribution"] == "hanzo-ollama" and rows["ollama"]["version"] == __version__
    assert venv.hanzo("plugins:uninstall", "ollama", "--yes").returncode == 0
    assert "ollama" not in venv.plugin_names()


def test_upgrade_moves_to_the_newest_version(venv: Venv, tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    for version in ("1.0", "2.0"):
        project = _project(tmp_path / f"up-{version}", "upgrade-demo", version, [])
        with (project / "pyproject.toml").open("a") as toml:
            toml.write('\n[project.entry-points.hanzo]\nupgrade_demo = "upgrade_demo"\n')
        _wheel(venv, project, wheelhouse)
    first = _hanzo_with_links(venv, wheelhouse, "plugins:install", "upgrade-demo==1.0")
    assert "installed upgrade-demo 1.0: plugin upgrade_demo" in first.stderr, first.stderr
    again = _hanzo_with_links(venv, wheelhouse, "plugins:install", "upgrade-demo")
    assert "upgrade-demo 1.0 was already installed" in again.stderr, again.stderr
    upgraded = _hanzo_with_links(venv, wheelhouse, "plugins:install", "--upgrade", "upgrade-demo")
    assert "installed upgrade-demo 2.0: plugin upgrade_demo" in upgraded.stderr, upgraded.stderr
    assert venv.hanzo("plugins:uninstall", "upgrade-demo", "-y").returncode == 0
