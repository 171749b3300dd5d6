"""hanzo-webfolder: a complete provider plugin. Models are GGUF files in a web folder."""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from hanzo_cli.api import (
    ModelInfo,
    ModelNotFoundError,
    Provider,
    PullOption,
    PullOptions,
    RemoteFileNotFoundError,
    data_dir,
    download,
    hookimpl,
    mtime,
)


class WebFolderProvider(Provider):
    name = "webfolder"
    description = "GGUF files served from $WEBFOLDER_URL"
    pull_options = (PullOption("sha256", ("--sha256",), "Expected sha256 of the file.", metavar="HEX"),)

    def accepts(self, name: str) -> bool:  # no I/O: may this be one of our names?
        return "WEBFOLDER_URL" in os.environ and re.fullmatch(r"\w[\w.-]*", name) is not None

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        url = f"{os.environ['WEBFOLDER_URL']}/{name}.gguf"
        try:  # resumable, parallel, sha256-verified, with progress; nothing half-written
            download(url, folder() / f"{name}.gguf", sha256=options.extra.get("sha256"))
        except RemoteFileNotFoundError:  # no such model here: hanzo tries the next provider
            raise ModelNotFoundError(f"{url}: 404, the web folder has no model {name!r}") from None
        return self.show(name)

    def list(self) -> Iterator[ModelInfo]:
        for path in sorted(folder().glob("*.gguf")):
            yield ModelInfo(self.name, path.stem, path.stat().st_size, path=path, modified_at=mtime(path))


def folder() -> Path:
    return data_dir() / "webfolder"


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    register(WebFolderProvider())
