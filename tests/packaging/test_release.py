"""Release packaging: one version everywhere, pinned extras, and what the built wheels alone give a user.

``scripts/release --dry-run`` builds sdist + wheel of every distribution into one folder and checks them
(twine, metadata, entry points, py.typed). Then a fresh venv gets hanzo's own distributions from that
folder only (``--no-index --find-links DIST --no-deps``), their third-party requirements from the
normal index (held at the versions the test environment has, so pip's caches serve them: the
llama-cpp-python wheel built once is reused, never rebuilt), and runs ``hanzo --help``,
``hanzo plugins --json`` and the offline demo (``scripts/demo``) with that venv's ``hanzo``.
"""

from __future__ import annotations

import email.parser
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "scripts" / "release"
# Read before the autouse fixture moves HOME: the wheels pip built and the files it downloaded.
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(Path("~/.cache/pip").expanduser())


def load_release(root: Path | None = None) -> ModuleType:
    """scripts/release as a module (it has no .py suffix), optionally pointed at another tree."""
    loader = importlib.machinery.SourceFileLoader("hanzo_release", str(RELEASE))
    spec = importlib.util.spec_from_loader("hanzo_release", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    if root is not None:
        setattr(module, "ROOT", root)  # noqa: B010 - a module attribute mypy cannot see
    return module


def test_the_tree_is_one_consistent_release() -> None:
    release = load_release()
    assert release.problems() == []
    from hanzo_cli import __version__
    from hanzo_cli.api import API_VERSION

    assert Version(__version__) > Version("0.2.1")  # the unrelated hanzo-cli releases on PyPI
    assert Version(__version__).major == int(API_VERSION.split(".")[0])
    names = [d.name for d in release.distributions()]
    assert names[0] == "hanzo-cli" and len(names) == len(set(names)) >= 6


def test_the_example_plugins_declare_the_api_range() -> None:
    # "the API version it uses, up to the next major": the examples use only API 1.0's names, so they
    # may ask for less than the current minor, but their range must take the version being released.
    release = load_release()
    major, _ = release.api_version()
    for folder in ("plugin_example", "plugin_example_runtime"):
        dist = release.Distribution(ROOT / "tests" / folder)
        core = [r for r in dist.requirements() if canonicalize_name(r.name) == "hanzo-cli"]
        assert len(core) == 1
        floor = [s for s in core[0].specifier if s.operator == ">="]
        assert len(floor) == 1 and Version(floor[0].version).major == major
        assert str(core[0].specifier) == str(Requirement(f"x>={floor[0].version},<{major + 1}").specifier)
        assert release.core_version() in core[0].specifier


def test_set_version_rewrites_every_place_and_problems_catch_a_stray_pin(tmp_path: Path) -> None:
    for path in [ROOT / "pyproject.toml", ROOT / "hanzo_cli" / "__init__.py", ROOT / "hanzo_cli" / "api.py"]:
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for pyproject in ROOT.glob("plugins/*/pyproject.toml"):
        target = tmp_path / pyproject.relative_to(ROOT)
        target.parent.mkdir(parents=True)
        shutil.copy(pyproject, target)
    release = load_release(tmp_path)
    release.set_version("1.7.2")
    assert release.core_version() == "1.7.2"
    assert release.problems() == []
    text = (tmp_path / "pyproject.toml").read_text()
    assert '"hanzo-ollama==1.7.2"' in text and "==1.0.0" not in text
    lmstudio = tmp_path / "plugins" / "hanzo-lmstudio" / "pyproject.toml"
    assert '"hanzo-huggingface==1.7.2"' in lmstudio.read_text()
    lmstudio.write_text(lmstudio.read_text().replace("hanzo-huggingface==1.7.2", "hanzo-huggingface"))
    assert release.problems() == [
        "plugins/hanzo-lmstudio/pyproject.toml: "
        "first-party requirement hanzo-huggingface is not pinned to ==1.7.2"
    ]
    release.set_version("2.0.0")  # a major above API_VERSION 1.x: plugins' hanzo-cli>=1.0,<2 would exclude it
    assert any("does not carry API_VERSION" in p for p in release.problems())


def run_release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RELEASE), *args], capture_output=True, text=True, timeout=900, cwd=ROOT
    )


def test_a_release_without_a_changelog_section_is_refused(tmp_path: Path) -> None:
    from hanzo_cli import __version__

    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [Unreleased]\n\n### Added\n- something\n")
    proc = run_release("--changelog", str(changelog), "--dist", str(tmp_path / "dist"))
    assert proc.returncode != 0
    assert f"CHANGELOG.md has no section for {__version__}" in proc.stderr
    assert not (tmp_path / "dist").exists()  # refused before building anything
    changelog.write_text(f"# Changelog\n\n## [Unreleased]\n\n## [{__version__}] - 2026-12-01\n\n- first\n")
    assert load_release().changelog_problem(changelog, __version__) is None


# -- the built distributions, and a venv made of them ----------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / "dist"
    proc = run_release("--dry-run", "--no-isolation", "--dist", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def wheel_metadata(wheel: Path) -> Any:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(info).decode())


def wheel_record(wheel: Path) -> dict[str, str]:
    """path -> sha256 of every package file in the wheel (what pip must have installed)."""
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in archive.read(record).decode().splitlines()]
    return {row[0]: row[1] for row in rows if row[1] and ".dist-info/" not in row[0]}


def test_every_distribution_is_built_at_one_version(dist: Path) -> None:
    from hanzo_cli import __version__

    release = load_release()
    expected = set()
    for d in release.distributions():
        stem = f"{d.name.replace('-', '_')}-{__version__}"
        expected |= {f"{stem}-py3-none-any.whl", f"{stem}.tar.gz"}
    assert {p.name for p in dist.iterdir()} == expected


def test_the_wheel_checks_catch_a_missing_py_typed_and_entry_point(dist: Path, tmp_path: Path) -> None:
    from hanzo_cli import __version__

    release = load_release()
    assert release.wheel_problems(dist, __version__) == []
    broken = tmp_path / "dist"
    shutil.copytree(dist, broken)
    wheel = broken / f"hanzo_ollama-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(dist / wheel.name) as source, zipfile.ZipFile(wheel, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "hanzo_ollama/py.typed":
                continue
            if item.filename.endswith("entry_points.txt"):
                data = data.replace(b"ollama = hanzo_ollama", b"")
            target.writestr(item, data)
    found = release.wheel_problems(broken, __version__)
    assert any("hanzo_ollama/py.typed missing" in p for p in found), found
    assert any("entry point [hanzo] ollama = hanzo_ollama missing" in p for p in found), found


def third_party_requirements(dist: Path, ours: set[str]) -> list[str]:
    """What the wheels require from others: the core with its ``all`` extra, every plugin."""
    found: set[str] = set()
    for wheel in dist.glob("*.whl"):
        meta = wheel_metadata(wheel)
        extra = "all" if canonicalize_name(meta["Name"]) == "hanzo-cli" else ""
        for line in meta.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if canonicalize_name(req.name) in ours:
                continue
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                req.marker = None
                found.add(str(req))
    return sorted(found)


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("wheel-venv") / "venv"
    # No ensurepip needed (Debian's python3 may lack it): the test environment's pip installs into
    # the new venv through --python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python")]
    env = {**os.environ, "PIP_CACHE_DIR": PIP_CACHE, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    ours = sorted(canonicalize_name(d.name) for d in load_release().distributions())
    # 1. hanzo's own distributions: from dist/ and nowhere else.
    only_dist = {
        k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")
    }
    subprocess.run(
        [*pip, "install", "--quiet", "--no-index", "--find-links", str(dist), "--no-deps", *ours],
        check=True,
        env={**only_dist, "PIP_CONFIG_FILE": os.devnull},
        timeout=600,
    )
    # 2. their third-party requirements from the index, at the test environment's versions.
    requirements = third_party_requirements(dist, set(ours))
    constraints = root.parent / "constraints.txt"
    pins = []
    for req in requirements:
        try:
            pins.append(f"{Requirement(req).name}=={version(Requirement(req).name)}")
        except PackageNotFoundError:
            pass
    constraints.write_text("\n".join(pins) + "\n")
    proc = subprocess.run(
        [*pip, "install", "--quiet", "--constraint", str(constraints), *requirements],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout  # every requirement of every installed distribution is met
    yield root


def venv_run(venv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_pip_installed_our_wheels_not_an_index_namesake(dist: Path, wheel_venv: Path) -> None:
    """The index has an unrelated hanzo-cli (0.1.0-0.2.x) and hanzo-node: every installed file of
    ours must be byte-for-byte the one in our wheel."""
    from hanzo_cli import __version__

    script = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    if d.metadata['Name'].startswith('hanzo'):\n"
        "        files = [f for f in d.files or [] if f.hash and '.dist-info' not in str(f)]\n"
        "        files = [f for f in files if not str(f).startswith('..')]  # bin/hanzo, made by pip\n"
        "        rows = [(str(f), f.hash.value) for f in files]\n"
        "        out[d.metadata['Name']] = {'version': d.version, 'files': dict(rows)}\n"
        "print(json.dumps(out))\n"
    )
    proc = venv_run(wheel_venv, "python", "-c", script)
    installed = json.loads(proc.stdout)
    wheels = {wheel_metadata(w)["Name"]: w for w in dist.glob("*.whl")}
    assert set(installed) == set(wheels)
    for name, wheel in wheels.items():
        assert installed[name]["version"] == __version__, name
        expected = {path: digest.removeprefix("sha256=") for path, digest in wheel_record(wheel).items()}
        assert installed[name]["files"] == expected, name


def test_the_wheel_install_runs_hanzo_with_every_plugin(wheel_venv: Path, tmp_path: Path) -> None:
    from hanzo_cli import __version__
    from hanzo_cli.extras import FIRST_PARTY

    env = {"HANZO_HOME": str(tmp_path / "hanzo")}
    help_proc = venv_run(wheel_venv, "hanzo", "--help", env=env)
    assert help_proc.returncode == 0 and "model:pull" in help_proc.stdout, help_proc.stderr
    assert venv_run(wheel_venv, "hanzo", "--version", env=env).stdout.strip().endswith(__version__)
    proc = venv_run(wheel_venv, "hanzo", "plugins", "--json", env=env)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    plugins = {row["name"]: row for row in json.loads(proc.stdout)}
    built = {canonicalize_name(d.name) for d in load_release().distributions()}
    expected = {short: dist for short, (_, dist) in FIRST_PARTY.items() if dist in built}
    assert {name: row["distribution"] for name, row in plugins.items()} == expected
    assert {row["version"] for row in plugins.values()} == {__version__}


def test_the_offline_demo_runs_on_the_wheel_install(wheel_venv: Path) -> None:
    if shutil.which("docker-registry") is None and not Path("/usr/bin/docker-registry").exists():
        if os.environ.get("REQUIRE_TEST_SERVERS"):
            pytest.fail("docker-registry is not installed (REQUIRE_TEST_SERVERS is set)")
        pytest.skip("docker-registry is not installed")
    cache = Path(os.environ["HANZO_TEST_CACHE"]) / "demo-xdg-cache"  # the converted MiniLM GGUF, kept
    env = {
        **os.environ,
        "HANZO": str(wheel_venv / "bin" / "hanzo"),
        "PYTHON": sys.executable,  # converts the model once and finds a port; hanzo is the wheels'
        "XDG_CACHE_HOME": str(cache),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "runtime llamacpp, 384 dimensions" in proc.stdout, proc.stdout[-2000:]
