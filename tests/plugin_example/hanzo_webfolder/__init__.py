"""A complete hanzo provider plugin: GGUF files from a web folder ($WEBFOLDER_URL/<name>.gguf)."""

import os
import re
from collections.abc import Callable, Iterator

from hanzo_cli import hookimpl
from hanzo_cli.config import data_dir
from hanzo_cli.providers import ModelInfo, Provider, PullOptions, mtime


class WebFolderProvider(Provider):
    name = "webfolder"
    description = "GGUF files served from $WEBFOLDER_URL"

    def accepts(self, name: str) -> bool:
        folder_set = "WEBFOLDER_URL" in os.environ
        return folder_set and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) is not None

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        from hanzo_cli.download import download  # resumable, verified, with progress

        url = f"{os.environ['WEBFOLDER_URL']}/{name}.gguf"
        download(url, data_dir() / "webfolder" / f"{name}.gguf")
        return self.show(name)

    def list(self) -> Iterator[ModelInfo]:
        for path in sorted((data_dir() / "webfolder").glob("*.gguf")):
            size = path.stat().st_size
            yield ModelInfo(self.name, path.stem, size, path=path, modified_at=mtime(path))


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(WebFolderProvider())
