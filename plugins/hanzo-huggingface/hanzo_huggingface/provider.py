"""The ``huggingface`` provider (prefix ``hf``): models in the standard Hugging Face cache.

Names (see :mod:`hanzo_huggingface.refs`): ``org/repo`` (a GGUF repo's default quant, or a whole
snapshot), ``org/repo:Q8_0`` (one quant, every shard), ``org/repo/path/file.gguf`` (one file), with
``@revision`` after the repo for revisions other than the one ``main`` points at.

``model:list`` shows each GGUF model of a cached revision on its own line — named by its quant when
that is unique in the revision, else by its path — and any other repo as one snapshot.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from hanzo_cli.api import (
    FileSource,
    HanzoError,
    ModelFile,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    PullOption,
    PullOptions,
    Reclaimable,
    RemoteFile,
    RemoteVersion,
    Resolved,
    gguf_models,
    link_verified,
)
from hanzo_huggingface.cache import CacheScan, RepoCache, Snapshot
from hanzo_huggingface.hub import HubFile, HubSettings, Resolution, fetch_file, resolve, where
from hanzo_huggingface.refs import HubRef, check_revision, is_commit, model_name, parse
from hanzo_huggingface.selection import Choice, choose

_WEIGHTS = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")


class HuggingFaceProvider(Provider, FileSource):
    """Pulls from the Hugging Face Hub into the standard HF cache (resumable, verified)."""

    name = "huggingface"
    prefixes = ("hf",)
    description = "Hugging Face Hub: GGUF quants or whole repos, kept in the standard HF cache"
    priority = 20
    pull_options: ClassVar[Sequence[PullOption]] = (
        PullOption("file", ("--file",), "Pull this file of the repo (every shard of a split GGUF).", "NAME"),
        PullOption("revision", ("--revision",), "Branch, tag or commit (default: main).", "REV"),
        PullOption("include", ("--include",), "Pull only files matching PATTERN.", "PATTERN", multiple=True),
        PullOption("exclude", ("--exclude",), "Skip files matching PATTERN.", "PATTERN", multiple=True),
    )

    def accepts(self, name: str) -> bool:
        try:
            parse(name)
        except HanzoError:
            return False
        return True

    def pull(self, name: str, options: PullOptions) -> ModelInfo:
        from hanzo_cli.api import human_size, info

        ref = parse(name)
        wanted = _Wanted.of(ref, options.extra)
        settings = HubSettings.from_env()
        if settings.offline:
            return self._pull_offline(ref, wanted, settings)
        res = resolve(
            ref.repo_id,
            revision=wanted.revision,
            quant=ref.quant,
            file=wanted.file,
            include=wanted.include,
            exclude=wanted.exclude,
            settings=settings,
        )
        if is_commit(res.revision):  # a pin: model:prune never takes its revision for superseded
            from hanzo_huggingface.lifecycle import record_pin

            record_pin(settings.cache_dir, res.repo_id, res.commit)
        if res.choice.model and res.choice.default_among:
            info(
                f"{res.repo_id}: using {res.choice.model.label()} by default "
                f"(available: {res.choice.default_among}; pick one with hf:{res.repo_id}:QUANT)"
            )
        repo = RepoCache(settings.cache_dir, res.repo_id)
        repo.prepare(res.commit)
        repo.write_ref(res.revision, res.commit)  # first, as huggingface_hub does
        fetched = 0
        for file in res.files:  # every blob, present or not: one found in place is verified first
            fetched += repo.ensure_blob(
                file.etag,
                size=file.size,
                sha256=file.sha256,
                label=f"{file.path} in {res.where()}",
                fetch=functools.partial(_fetch, res, file),
            )
        # Linked only once every file is here, so a split model never shows up with shards missing.
        unlinked = [f for f in res.files if not repo.links_to(res.commit, f.path, f.etag)]
        for file in unlinked:
            repo.link(res.commit, file.path, file.etag)
        if not fetched and not unlinked:
            info(f"{res.where()}: {len(res.files)} file(s), {human_size(res.size)}, already in the cache")
        snapshot = CacheScan(settings.cache_dir).find(res.repo_id, res.commit)
        if snapshot is None:  # pragma: no cover - we just wrote it
            raise HanzoError(f"{res.where()} is not in the cache after pulling it")
        return describe(snapshot, res.choice.paths)

    def _pull_offline(self, ref: HubRef, wanted: _Wanted, settings: HubSettings) -> ModelInfo:
        from hanzo_cli.api import info

        why = f"HF_HUB_OFFLINE is set and it is not in the Hugging Face cache ({settings.cache_dir})"
        snapshot = CacheScan(settings.cache_dir).find(ref.repo_id, wanted.revision)
        if snapshot is None:
            raise HanzoError(f"cannot pull {where(ref.repo_id, wanted.revision)}: {why}")
        try:
            choice = wanted.choose(snapshot, ref)
        except ModelNotFoundError as exc:
            raise HanzoError(f"{exc.message}: {why}") from None
        info(f"HF_HUB_OFFLINE is set: using the cached {snapshot.repo_id} at {snapshot.commit[:12]}")
        return describe(snapshot, choice.paths)

    # -- FileSource: what other plugins (LM Studio) fetch through ---------------------------------

    def resolve_files(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        quant: str | None = None,
        file: str | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> Resolved:
        res = resolve(repo_id, revision=revision, quant=quant, file=file, include=include, exclude=exclude)
        return Resolved(
            repo_id=res.repo_id,
            revision=res.revision,
            commit=res.commit,
            files=tuple(RemoteFile(f.path, f.size, f.sha256) for f in res.files),
            where=res.where(),
            gguf=res.choice.model,
            default_among=res.choice.default_among,
            handle=res,
        )

    def fetch_file(self, resolved: Resolved, file: RemoteFile, dest: Path) -> str:
        if file.sha256 and link_verified(file.sha256, file.size, dest):
            return file.sha256
        res = resolved.handle
        hub_file = next(f for f in res.files if f.path == file.path)
        return fetch_file(res, hub_file, dest).sha256

    def side_files(self, dest: Path) -> list[Path]:
        # Files kept in git are fetched under ``<dest>.unverified`` until their object id is checked.
        staged = dest.with_name(dest.name + ".unverified")
        return [*super().side_files(dest), staged, *super().side_files(staged)]

    # -- the cache -------------------------------------------------------------------------------

    def list(self) -> Iterable[ModelInfo]:
        for snapshot in CacheScan(HubSettings.from_env().cache_dir).snapshots:
            models = gguf_models(snapshot.sizes())
            for paths in [m.paths for m in models] or [tuple(sorted(snapshot.files))]:
                yield describe(snapshot, paths)

    def get(self, name: str) -> ModelInfo | None:
        try:
            ref = parse(name)
        except HanzoError:
            return None
        found = _find(CacheScan(HubSettings.from_env().cache_dir), ref)
        return describe(*found) if found else None

    def delete(self, name: str) -> ModelInfo:
        """Delete what ``get(name)`` shows. The whole revision goes (refs too, and the repo folder with
        its last revision) when no other model is left in it; else only these files, their blobs only
        when no other revision links them."""
        scan = CacheScan(HubSettings.from_env().cache_dir)
        found = _find(scan, parse(name))
        if found is None:
            raise ModelNotFoundError(f"model {name!r} not found in the Hugging Face cache")
        snapshot, paths = found
        removed = describe(snapshot, paths)
        rest = set(snapshot.files) - set(paths)
        # The whole revision goes only when what is left is no model of its own (configs, README):
        # other weights (a safetensors pulled with --include) must survive a GGUF's delete.
        whole = not rest or not any(p.lower().endswith(_WEIGHTS) for p in rest)
        scan.delete(snapshot, None if whole else paths)
        return removed

    # -- lifecycle (model:outdated, model:update, model:lock): see hanzo_huggingface.lifecycle ------

    def installed_version(self, model: ModelInfo) -> str | None:
        from hanzo_huggingface.lifecycle import installed_version

        return installed_version(model)

    def is_pinned(self, model: ModelInfo) -> bool:
        from hanzo_huggingface.lifecycle import is_pinned

        return is_pinned(model)

    def remote_version(self, model: ModelInfo, options: PullOptions) -> RemoteVersion | None:
        from hanzo_huggingface.lifecycle import remote_version

        return remote_version(model)

    def update(self, model: ModelInfo, options: PullOptions) -> ModelInfo:
        """Pull the branch's new commit by its id (only blobs the cache lacks are fetched, and no ref
        moves), then point the branch at it — the switch, once every file is linked, so a killed
        update leaves the old revision in use — then delete this model's files of the old revision
        unless a branch or tag still names it; blobs the new revision shares are kept."""
        from hanzo_huggingface.lifecycle import (
            exact_name,
            installed_version,
            record_pin,
            remote_version,
            superseded_name,
        )

        old = installed_version(model)
        latest = remote_version(model).version
        if latest == old:
            return model
        ref = parse(model.name)
        settings = HubSettings.from_env()
        was_pinned = record_pin(settings.cache_dir, ref.repo_id, latest)  # as the pull by commit will
        pulled = self.pull(
            exact_name(model.name, latest), PullOptions(insecure=options.insecure, quiet=options.quiet)
        )
        repo_id = str(pulled.details.get("repo_id") or ref.repo_id)
        RepoCache(settings.cache_dir, repo_id).write_ref(ref.revision or "main", latest)
        if not was_pinned:  # pulled by commit to switch atomically, not pinned by the user
            record_pin(settings.cache_dir, repo_id, latest, pinned=False)
        if old:
            snapshot = CacheScan(settings.cache_dir).find(repo_id, old)
            if snapshot is not None and not snapshot.refs:
                try:
                    self.delete(superseded_name(model, old))
                except ModelNotFoundError:
                    pass
        return self.get(model.name) or pulled

    def pull_exact(self, name: str, version: str, options: PullOptions) -> ModelInfo:
        return self.pull(
            self.exact_name(name, version), PullOptions(insecure=options.insecure, quiet=options.quiet)
        )

    def exact_name(self, name: str, version: str) -> str:
        from hanzo_huggingface.lifecycle import exact_name

        return exact_name(name, version)

    def reclaimable(self, partials_older_than: float) -> Sequence[Reclaimable]:
        from hanzo_huggingface.lifecycle import reclaimable

        return reclaimable(self.name, partials_older_than)

    def reclaim(self, items: Sequence[Reclaimable], partials_older_than: float) -> Sequence[Reclaimable]:
        from hanzo_huggingface.lifecycle import reclaim

        return reclaim(self.name, items, partials_older_than)


def _fetch(res: Resolution, file: HubFile, dest: Path, partial: Path) -> tuple[str, ...]:
    """Fetch one file into the cache; the digests it was verified against (for the record). A file
    verified in another store already (Ollama's blobs, LM Studio's folder) is linked, not fetched."""
    if file.sha256 and link_verified(file.sha256, file.size, dest):
        return (file.sha256,)
    result = fetch_file(res, file, dest, partial=partial)
    return (result.sha256,) if file.sha256 else (result.sha256, file.blob_id)


@dataclass(frozen=True)
class _Wanted:
    """What a pull asks for beyond the name: ``--revision``, ``--file``, ``--include``/``--exclude``."""

    revision: str | None
    file: str | None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, ref: HubRef, extra: Mapping[str, Any]) -> _Wanted:
        revision = extra.get("revision")
        if revision and ref.revision and revision != ref.revision:
            raise HanzoError(f"{ref} names revision {ref.revision!r} but --revision is {revision!r}")
        file = extra.get("file")
        if file and ref.path and file != ref.path:
            raise HanzoError(f"{ref} names file {ref.path!r} but --file is {file!r}")
        return cls(
            revision=check_revision(revision) if revision else ref.revision,
            file=file or ref.path,
            include=tuple(extra.get("include") or ()),
            exclude=tuple(extra.get("exclude") or ()),
        )

    def choose(self, snapshot: Snapshot, ref: HubRef) -> Choice:
        return choose(
            snapshot.sizes(),
            quant=ref.quant,
            file=self.file,
            include=self.include,
            exclude=self.exclude,
            where=model_name(snapshot.repo_id, snapshot.label),
        )


def _find(scan: CacheScan, ref: HubRef) -> tuple[Snapshot, tuple[str, ...]] | None:
    """The cached snapshot and files a name means, or None (an ambiguous name is an error)."""
    snapshot = scan.find(ref.repo_id, ref.revision)
    if snapshot is None:
        return None
    try:
        choice = _Wanted(ref.revision, ref.path).choose(snapshot, ref)
    except ModelNotFoundError:
        return None
    return snapshot, choice.paths


def describe(snapshot: Snapshot, paths: Sequence[str]) -> ModelInfo:
    """``paths`` of a cached snapshot as a model: one GGUF model, one file, or the (filtered) snapshot."""
    models = gguf_models(snapshot.sizes())
    model = next((m for m in models if m.paths == tuple(paths)), None)
    details: dict[str, Any] = {
        "repo_id": snapshot.repo_id,
        "revision": snapshot.commit,
        "refs": sorted(snapshot.refs),
    }
    if model is not None:
        unique = sum(m.quant == model.quant for m in models) == 1
        name = model_name(
            snapshot.repo_id, snapshot.label, quant=model.quant if unique else None, path=model.first
        )
        details["quant"] = model.quant
        if len(model.paths) > 1:
            details["shards"] = len(model.paths)
        main = snapshot.files[model.first].file_path
    elif len(paths) == 1 and len(snapshot.files) > 1:
        name = model_name(snapshot.repo_id, snapshot.label, path=paths[0])
        main = snapshot.files[paths[0]].file_path
    else:
        name = model_name(snapshot.repo_id, snapshot.label)
        main = snapshot.files[paths[0]].file_path if len(paths) == 1 else snapshot.path
    files = [_model_file(snapshot, p, split=model is not None and len(model.paths) > 1) for p in paths]
    modified = max(snapshot.files[p].blob_last_modified for p in paths)
    return ModelInfo(
        provider=HuggingFaceProvider.name,
        name=name,
        size=sum(f.size for f in files),
        digest=files[0].digest if len(files) == 1 or model is not None else None,
        path=main,
        modified_at=datetime.fromtimestamp(modified, tz=timezone.utc),
        files=files,
        details=details,
    )


def _model_file(snapshot: Snapshot, path: str, *, split: bool) -> ModelFile:
    cached = snapshot.files[path]
    etag = cached.blob_path.name
    kind = "shard" if split else "model" if path.lower().endswith(_WEIGHTS) else "file"
    return ModelFile(
        path=cached.file_path,
        size=cached.size_on_disk,
        digest=f"sha256:{etag}" if len(etag) == 64 else None,
        kind=kind,
    )
