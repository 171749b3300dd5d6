"""A complete hanzo provider plugin: GGUF files from a web folder ($WEBFOLDER_URL/<name>.gguf)."""

import os
import re
from collections.abc import Callable, Iterator

from hanzo_cli.api import ModelInfo, Provider, PullOptions, data_dir, download, hookimpl, mtime


class WebFolderProvider(Provider):
    name = "webfolder"
    description = "GGUF files served from $WEBFOLDER_URL"

    def accepts(self, name: str) -> bool:
        folder_set = "WEBFOLDER_URL" in os.environ
        return folder_set and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) is not None

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        url = f"{os.environ['WEBFOLDER_URL']}/{name}.gguf"
        download(url, data_dir() / "webfolder" / f"{name}.gguf")  # resumable, verified, with progress
        return self.show(name)

    def list(self) -> Iterator[ModelInfo]:
        for path in sorted((data_dir() / "webfolder").glob("*.gguf")):
            size = path.stat().st_size
            yield ModelInfo(self.name, path.stem, size, path=path, modified_at=mtime(path))


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(WebFolderProvider())
