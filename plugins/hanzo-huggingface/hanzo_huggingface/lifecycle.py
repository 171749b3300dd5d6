"""The Hugging Face provider's model lifecycle: what a revision points at on the Hub now, pins
(a name with ``@<commit>``), updates that fetch only new blobs, and pulls at an exact commit.

A cached model names a branch or tag (``org/repo:Q8_0`` is ``main``) or a commit. A commit is a
pin: it can never move. A branch is checked with one ``model_info`` request; the file listing is
asked for only when the commit moved, to say what an update would download.
"""

from __future__ import annotations

from hanzo_cli.api import HanzoError, ModelInfo, RemoteFile, RemoteVersion
from hanzo_huggingface.refs import DEFAULT_REVISION, is_commit, model_name, parse


def is_pinned(model: ModelInfo) -> bool:
    try:
        revision = parse(model.name).revision
    except HanzoError:
        return False
    return revision is not None and is_commit(revision)


def installed_version(model: ModelInfo) -> str | None:
    revision = model.details.get("revision")
    return revision if isinstance(revision, str) else None


def remote_version(model: ModelInfo) -> RemoteVersion:
    from huggingface_hub import HfApi

    from hanzo_cli.api import __version__
    from hanzo_huggingface.cache import RepoCache
    from hanzo_huggingface.hub import LIBRARY_NAME, HubSettings, hub_errors, resolve

    ref = parse(model.name)
    settings = HubSettings.from_env()
    if settings.offline:
        raise HanzoError(f"HF_HUB_OFFLINE is set: cannot look up {ref.repo_id} on {settings.endpoint}")
    revision = ref.revision or DEFAULT_REVISION
    api = HfApi(endpoint=settings.endpoint, library_name=LIBRARY_NAME, library_version=__version__)
    with hub_errors(ref.repo_id, revision, settings.endpoint):
        commit = api.model_info(ref.repo_id, revision=revision).sha or ""
    if commit == installed_version(model):
        files = tuple(RemoteFile(f.path.name, f.size, _hex(f.digest)) for f in model.files)
        return RemoteVersion(commit, files, 0)
    res = resolve(ref.repo_id, revision=revision, quant=ref.quant, file=ref.path, settings=settings)
    repo = RepoCache(settings.cache_dir, res.repo_id)
    fetch = sum(f.size for f in res.files if not repo.blob(f.etag).exists())
    return RemoteVersion(res.commit, tuple(RemoteFile(f.path, f.size, f.sha256) for f in res.files), fetch)


def _hex(digest: str | None) -> str | None:
    return digest.split(":", 1)[1] if digest else None


def superseded_name(model: ModelInfo, old_commit: str) -> str:
    """The name the model's previous revision goes by once its branch has moved on."""
    ref = parse(model.name)
    return model_name(ref.repo_id, old_commit, quant=ref.quant, path=ref.path)


def exact_name(name: str, commit: str) -> str:
    """``name`` at ``commit`` (a lock file's entry)."""
    ref = parse(name)
    return model_name(ref.repo_id, commit, quant=ref.quant, path=ref.path)
