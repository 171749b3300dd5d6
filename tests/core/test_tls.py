"""The TLS context every client shares (hanzo_cli.tls): verified against a real HTTPS server on
loopback whose certificate openssl makes for the test, trusted through ``SSL_CERT_FILE`` only."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanzo_cli.download import download
from hanzo_cli.errors import HanzoError
from hanzo_cli.tls import ssl_context


@pytest.fixture(autouse=True)
def _fresh_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HANZO_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("HANZO_PROGRESS", "0")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ssl_context.cache_clear()
    yield
    ssl_context.cache_clear()


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path, bytes]]:
    """(base URL, its certificate, the bytes of /blob) of an HTTPS file server on loopback."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    root = tmp_path / "root"
    root.mkdir()
    data = bytes(range(256)) * 4096
    (root / "blob").write_bytes(data)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert, data
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_the_bundle_does_not_vouch_for_is_refused(
    https_server: tuple[str, Path, bytes], tmp_path: Path
) -> None:
    url, _cert, _data = https_server
    with pytest.raises(HanzoError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        download(url + "/blob", tmp_path / "out", retries=1)
    assert not (tmp_path / "out").exists()


def test_ssl_cert_file_is_trusted_and_the_context_is_shared(
    https_server: tuple[str, Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert, data = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    digest = hashlib.sha256(data).hexdigest()
    for name in ("one", "two"):
        result = download(url + "/blob", tmp_path / name, sha256=digest)
        assert result.sha256 == digest and (tmp_path / name).read_bytes() == data
    assert ssl_context() is ssl_context()  # built once per process
    assert ssl_context.cache_info().misses == 1
