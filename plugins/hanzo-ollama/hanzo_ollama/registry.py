"""The registry protocol, spoken natively: Ollama's registry and any OCI/Docker distribution registry.

Names follow Ollama's grammar (:class:`hanzo_cli.store.ManifestName`). Two rules decide the URL:

* **Scheme**: https, or plain http with ``--insecure`` (as Ollama does). A name written with
  ``http://`` needs ``--insecure``.
* **Case**: OCI registries accept only lower-case repository names, while Ollama names compare
  case-insensitively and keep the user's spelling. So the repository path is lower-cased in URLs
  for every registry except registry.ollama.ai (which takes names as typed, as Ollama sends them);
  tags are sent as typed (they are case-sensitive in OCI). On disk the user's spelling is kept.

Authentication: pulls from registry.ollama.ai need none. A registry that answers 401 with a
``WWW-Authenticate: Bearer realm=…`` challenge gets an anonymous token from its realm (Docker
Hub, ghcr.io and token-auth distribution registries work this way). Basic auth and Ollama's
signed-key push auth are not supported.

Mirrors (Docker's ``registry-mirrors``, per upstream host): the setting ``registry.mirrors`` (or
``HANZO_REGISTRY_MIRRORS``) lists ``upstream-host=mirror-url`` pairs, comma-separated; a pull
tries each mirror of the model's host in the order given, then the host itself. A mirror that
answers 404, cannot be reached, or serves bytes that do not match their digest is passed over,
with one line saying so. ``http://`` mirrors need no ``--insecure``: the URL says how to reach
it. Models are stored under the upstream's name, whichever registry served them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hanzo_cli.api import (
    DEFAULT_HOST,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    ConfigError,
    DownloadError,
    HanzoError,
    IntegrityError,
    Layer,
    ManifestName,
    NotFoundError,
    RemoteFileNotFoundError,
    digest_hex,
    get_setting,
)

if TYPE_CHECKING:
    import httpx

    from hanzo_cli.api import ProgressBar, Store

#: The setting (config:set; env HANZO_REGISTRY_MIRRORS) listing registry mirrors.
MIRRORS_SETTING = "registry.mirrors"

UPLOAD_CHUNK = 1 << 20
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_NOT_FOUND_CODES = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}


@dataclass(frozen=True)
class RegistryName:
    """A model name with the scheme its registry is reached by."""

    name: ManifestName
    scheme: str
    endpoint: str | None = None  # a mirror's base URL, used instead of scheme://host

    @classmethod
    def parse(cls, text: str, *, insecure: bool) -> RegistryName:
        """Parse ``[scheme://][host/][namespace/]model[:tag]``; http needs ``insecure``."""
        scheme = "https"
        if "://" in text:
            scheme = text.strip().split("://", 1)[0].lower()
            if scheme not in ("http", "https"):
                raise HanzoError(f"unsupported scheme {scheme!r} in {text!r} (use http or https)")
            if scheme == "http" and not insecure:
                raise HanzoError(f"{text!r} is a plain-HTTP registry; pass --insecure to use it")
        return cls(ManifestName.parse(text), "http" if insecure else scheme)

    @property
    def repository(self) -> str:
        """The repository path as sent to the registry (see the module docstring for the case rule)."""
        repo = self.name.repository
        if self.endpoint is not None:
            return repo.lower()  # a mirror is a distribution registry, whoever it mirrors
        return repo if self.name.host.lower() == DEFAULT_HOST else repo.lower()

    @property
    def base_url(self) -> str:
        root = self.endpoint or f"{self.scheme}://{self.name.host}"
        return f"{root}/v2/{self.repository}"

    def via(self, mirror_url: str) -> RegistryName:
        """The same model on a mirror of its registry."""
        return replace(self, endpoint=mirror_url.rstrip("/"))

    def manifest_url(self, reference: str | None = None) -> str:
        """The manifest's URL by tag, or by ``reference`` (a ``sha256:`` digest, for pins)."""
        return f"{self.base_url}/manifests/{reference or self.name.tag}"

    def blob_url(self, digest: str) -> str:
        return f"{self.base_url}/blobs/{digest}"


class RegistryClient:
    """One repository on one registry: fetch manifests, check and upload blobs, put manifests."""

    def __init__(self, target: RegistryName, client: httpx.Client) -> None:
        self.target = target
        self.client = client
        self._token: str | None = None

    @property
    def display(self) -> str:
        return self.target.name.display()

    @property
    def host(self) -> str:
        return self.target.name.host

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (a Bearer token once a challenge was answered)."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- pulling ---------------------------------------------------------------------------------

    def fetch_manifest(self, reference: str | None = None) -> bytes:
        """The raw manifest bytes (not yet validated: the caller runs ``parse_manifest``), by tag
        or by ``reference`` (a digest)."""
        response = self._send(
            "GET", self.target.manifest_url(reference), headers={"Accept": MANIFEST_MEDIA_TYPE}, stream=True
        )
        try:
            if response.status_code != 200:
                response.read()
                raise self._error(response, f"model {self.display!r}")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                raise HanzoError(f"manifest of {self.display!r} is too large ({length} bytes)")
            raw = response.read()
        finally:
            response.close()
        # A registry names the manifest's digest; a mismatch means a broken proxy or cache.
        claimed = response.headers.get("Docker-Content-Digest", "")
        if claimed.startswith("sha256:") and claimed != "sha256:" + hashlib.sha256(raw).hexdigest():
            raise HanzoError(f"manifest of {self.display!r} does not match its digest {claimed}")
        return raw

    # -- pushing ---------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """Whether the registry already has the blob (a redirect to storage counts as yes)."""
        response = self._send("HEAD", self.target.blob_url(digest))
        if response.status_code == 200 or 300 <= response.status_code < 400:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, f"blob {digest}")

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Ask the registry to link a blob it holds in another repository into this one (a
        cross-repository mount: nothing is uploaded). False when it does not do mounts."""
        import httpx

        url = httpx.URL(f"{self.target.base_url}/blobs/uploads/").copy_merge_params(
            {"mount": digest, "from": from_repository}
        )
        response = self._send("POST", url)
        if response.status_code == 201:
            return True
        if response.status_code == 202 and "Location" in response.headers:
            # It opened an upload instead: cancel it, the caller uploads the usual way.
            location = httpx.URL(self.target.base_url).join(response.headers["Location"])
            with contextlib.suppress(httpx.HTTPError):
                self._send("DELETE", location)
        return False

    def upload_blob(self, path: Path, layer: Layer, bar: ProgressBar) -> None:
        """Monolithic upload (POST, then PUT of the file as a stream) of one local blob."""
        import httpx

        start = self._send("POST", f"{self.target.base_url}/blobs/uploads/")
        if start.status_code != 202 or "Location" not in start.headers:
            raise self._error(start, f"upload of blob {layer.digest}")
        # The Location carries upload state (?_state=…) that must be kept: merge, don't replace.
        location = httpx.URL(self.target.base_url).join(start.headers["Location"])
        response = self._send(
            "PUT",
            location.copy_merge_params({"digest": layer.digest}),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(layer.size)},
            content=_read_chunks(path, bar),
        )
        if response.status_code != 201:
            raise self._error(response, f"upload of blob {layer.digest}")

    def put_manifest(self, raw: bytes) -> None:
        media_type = json.loads(raw).get("mediaType") or MANIFEST_MEDIA_TYPE
        response = self._send(
            "PUT", self.target.manifest_url(), headers={"Content-Type": media_type}, content=raw
        )
        if response.status_code not in (200, 201):
            raise self._error(response, f"manifest of {self.display!r}")

    # -- plumbing --------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request, answering one Bearer challenge. Streamed bodies are only sent after
        a POST has already obtained the token, so they are never needed twice."""
        for attempt in range(2):
            # The registry's token is for the registry: an upload Location on a storage host
            # (a presigned URL) must not receive it.
            same_host = urlsplit(str(url)).netloc == urlsplit(self.target.base_url).netloc
            auth = self.auth_headers() if same_host else {}
            request = self.client.build_request(
                method, url, headers={**(headers or {}), **auth}, content=content
            )
            response = self.client.send(request, stream=stream)
            if response.status_code != 401 or attempt or not self._authenticate(response):
                return response
            response.close()
        raise AssertionError("unreachable")

    def _authenticate(self, response: httpx.Response) -> bool:
        """Fetch an anonymous token for a ``Bearer`` challenge; False if there is none to answer."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() != "bearer":
            return False
        params = dict(_CHALLENGE_PARAM_RE.findall(params_text))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            return False
        reply = self.client.get(realm, params=params)
        if reply.status_code != 200:
            return False
        try:
            data = reply.json()
        except ValueError:
            return False
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or token == self._token:
            return False
        self._token = token
        return True

    def _error(self, response: httpx.Response, what: str) -> HanzoError:
        """A one-line error for a registry refusal (404 and *_UNKNOWN codes become NotFoundError)."""
        codes, messages = _registry_errors(response)
        if response.status_code == 404 or codes & _NOT_FOUND_CODES:
            return NotFoundError(f"{what} not found on registry {self.host}")
        if response.status_code == 401:
            return HanzoError(
                f"registry {self.host} requires authentication for {what}, which hanzo does not "
                "support (only anonymous Bearer tokens)"
            )
        detail = "; ".join(messages) or response.reason_phrase
        return HanzoError(f"registry {self.host} refused {what}: HTTP {response.status_code} {detail}")


def registry_mirrors(host: str) -> list[str]:
    """The mirror URLs configured for registry ``host``, in the order to try them."""
    text = get_setting(MIRRORS_SETTING) or ""
    found = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        upstream, sep, url = (part.strip() for part in entry.partition("="))
        scheme = urlsplit(url).scheme.lower() if sep else ""
        if not upstream or scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ConfigError(
                f"invalid {MIRRORS_SETTING} entry {entry!r}: expected upstream-host=http(s)://mirror[:port]"
            )
        if upstream.lower() == host.lower():
            found.append(url.rstrip("/"))
    return found


class RegistrySources:
    """Where a pull gets a model: the mirrors of its registry in order, then the registry itself.

    The manifest comes from the first that has it; each blob from the registry that served the
    manifest, else (missing, unreachable, wrong bytes) from the upstream."""

    def __init__(self, target: RegistryName, client: httpx.Client, notify: Callable[[str], None]) -> None:
        self.upstream = RegistryClient(target, client)
        self.mirrors = [RegistryClient(target.via(url), client) for url in registry_mirrors(target.name.host)]
        self.chosen = self.upstream
        self._notify = notify

    def fetch_manifest(self, reference: str | None = None) -> bytes:
        """The manifest (by tag, or by ``reference``: a digest its bytes must match)."""
        import httpx

        for mirror in self.mirrors:
            try:
                raw = mirror.fetch_manifest(reference)
            except (HanzoError, httpx.HTTPError) as exc:
                self._passed_over(mirror, _reason(exc))
                continue
            if reference and "sha256:" + hashlib.sha256(raw).hexdigest() != reference:
                self._passed_over(mirror, f"its manifest does not match {reference}")
                continue
            self.chosen = mirror
            return raw
        return self.upstream.fetch_manifest(reference)

    def pull_blob(self, store: Store, layer: Layer, desc: str) -> None:
        """Download one blob into ``store``, from the chosen mirror or else the upstream."""
        if self.chosen is not self.upstream:
            try:
                self._pull(self.chosen, store, layer, desc)
                return
            except (RemoteFileNotFoundError, DownloadError, IntegrityError) as exc:
                self._passed_over(self.chosen, _reason(exc))
                self.chosen = self.upstream
                with contextlib.suppress(HanzoError):
                    self.upstream.fetch_manifest()  # answers the upstream's auth challenge, if any
        self._pull(self.upstream, store, layer, desc)

    def _pull(self, source: RegistryClient, store: Store, layer: Layer, desc: str) -> None:
        url = source.target.blob_url(layer.digest)
        wait = None
        if source is not self.upstream:

            def wait() -> None:
                # Only the process that downloads (it holds the blob's lock) asks the mirror.
                from hanzo_ollama.pullthrough import wait_until_cached

                wait_until_cached(
                    url,
                    layer.size,
                    source.auth_headers(),
                    self._notify,
                    mirror=source.target.endpoint or source.host,
                    label=digest_hex(layer.digest)[:12],
                )

        store.pull_blob(
            layer.digest, url, size=layer.size, headers=source.auth_headers(), desc=desc, before_fetch=wait
        )

    def _passed_over(self, mirror: RegistryClient, reason: str) -> None:
        left = self.mirrors[self.mirrors.index(mirror) + 1 :] if mirror in self.mirrors else []
        then = left[0].target.endpoint if left else self.upstream.host
        self._notify(f"registry mirror {mirror.target.endpoint}: {reason}; pulling from {then} instead")


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, HanzoError) else str(exc)
    return text or type(exc).__name__


def _registry_errors(response: httpx.Response) -> tuple[set[str], list[str]]:
    """Codes and messages from a distribution-spec error body ``{"errors": [{code, message}]}``."""
    try:
        data = json.loads(response.content)
    except ValueError:
        return set(), []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return set(), []
    codes = {e["code"] for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)}
    messages = [
        f"{e.get('code')}: {e.get('message')}"[:200] for e in errors if isinstance(e, dict) and e.get("code")
    ]
    return codes, messages


def _read_chunks(path: Path, bar: ProgressBar) -> Iterator[bytes]:
    """The file in 1 MiB chunks, so a multi-GB blob is streamed, never read into memory."""
    with open(path, "rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            bar.update(len(chunk))
            yield chunk
