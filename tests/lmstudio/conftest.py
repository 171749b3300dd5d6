"""Fixtures of the LM Studio tests: a temp models folder, a loopback LM Studio REST server, a
stand-in ``lms`` executable, and the Hugging Face tests' Hub-like server."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fileserver import FileServer, Handler
from tests.huggingface.hubserver import FakeHub


@pytest.fixture
def lms_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LM Studio models folder, named by LMSTUDIO_MODELS_DIR."""
    folder = tmp_path / "lmstudio-models"
    folder.mkdir()
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(folder))
    return folder


def put(root: Path, name: str, source: Path) -> Path:
    """Copy the GGUF ``source`` to ``root/name`` (``publisher/repo/file.gguf``)."""
    dest = root / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


class LMStudioServer:
    """Answers ``GET /api/v0/models`` like LM Studio 0.3.6+ (documented shape), from ``models``."""

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.models: list[dict[str, Any]] = []
        self.status = 200
        self.body: bytes | None = None  # sent as is instead of the JSON list, when set
        server.add_route("/api/v0/models", self._answer)

    @property
    def url(self) -> str:
        return self.server.url("").rstrip("/")

    def add(self, ident: str, *, state: str = "not-loaded", **fields: Any) -> None:
        entry = {
            "id": ident,
            "object": "model",
            "type": "llm",
            "publisher": None,
            "arch": "qwen3",
            "compatibility_type": "gguf",
            "quantization": None,
            "state": state,
            "max_context_length": 32768,
        }
        entry.update(fields)
        self.models.append(entry)

    def requests(self) -> int:
        return len(self.server.requests_for("/api/v0/models"))

    def _answer(self, handler: Handler) -> None:
        body = self.body
        if body is None:
            body = json.dumps({"object": "list", "data": self.models}).encode()
        handler.send_bytes(body, self.status, content_type="application/json")


@pytest.fixture
def lmstudio(fileserver: FileServer, monkeypatch: pytest.MonkeyPatch) -> LMStudioServer:
    """A running "LM Studio" at LMSTUDIO_HOST."""
    server = LMStudioServer(fileserver)
    monkeypatch.setenv("LMSTUDIO_HOST", server.url)
    return server


# The stand-in records its arguments (one JSON list per line) and, for `lms get URL[@quant]`,
# writes FAKE_LMS_SOURCE to <LMSTUDIO_MODELS_DIR>/<org>/<repo>/<repo without -GGUF>-<QUANT>.gguf,
# the layout `lms get` produces. FAKE_LMS_TARGET replaces <org>/<repo>, FAKE_LMS_ROOT the models
# folder (LM Studio configured elsewhere); FAKE_LMS_EXIT makes it fail after printing a message.
FAKE_LMS = r"""#!{python}
import json, os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LMS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
print("Searching for models...", flush=True)
code = int(os.environ.get("FAKE_LMS_EXIT", "0"))
if code:
    print("Error: no model matched", flush=True)
    sys.exit(code)
if args[:1] == ["get"]:
    ref, _, quant = args[1].partition("@")
    org, repo = ref.rstrip("/").split("/")[-2:]
    target = os.environ.get("FAKE_LMS_TARGET") or f"{{org}}/{{repo}}"
    name = repo.removesuffix("-GGUF") + "-" + (quant or "q4_k_m").upper() + ".gguf"
    root = os.environ.get("FAKE_LMS_ROOT") or os.environ["LMSTUDIO_MODELS_DIR"]
    dest = Path(root) / target / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.environ["FAKE_LMS_SOURCE"], dest)
    sys.stdout.write("Downloading 50%\rDownloading 100%\n")  # a progress bar redrawn with \r
    print(f"Downloaded {{dest.name}}", flush=True)
"""


class FakeLms:
    def __init__(self, bin_dir: Path, log: Path) -> None:
        self.bin_dir = bin_dir
        self.log = log

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_lms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_qwen3_gguf: Path) -> Iterator[FakeLms]:
    """A stand-in ``lms`` first on PATH that copies the tiny qwen3 GGUF where ``lms get`` would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "lms"
    script.write_text(FAKE_LMS.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "lms-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LMS_LOG", str(log))
    monkeypatch.setenv("FAKE_LMS_SOURCE", str(tiny_qwen3_gguf))
    yield FakeLms(bin_dir, log)


@pytest.fixture
def hub(fileserver: FileServer, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """The Hugging Face tests' Hub-like server (HF_ENDPOINT points at it)."""
    fake = FakeHub(fileserver)
    monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
    return fake
