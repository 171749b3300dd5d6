"""One verifying TLS context per process.

httpx builds a new ``ssl.SSLContext`` for every client it creates unless it is given one, and
building one loads the whole CA bundle: 15-30 ms each, and a pull makes a client for the manifest
and one per download. Sharing one is safe (a context is only read once configured). It verifies as
httpx's default does: ``$SSL_CERT_FILE``, else ``$SSL_CERT_DIR``, else certifi's bundle.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from hanzo_cli.constants import ENV_SSL_CERT_DIR, ENV_SSL_CERT_FILE, env

if TYPE_CHECKING:
    import ssl


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """The process's TLS context for ``httpx.Client(verify=...)``, built on first use."""
    import ssl

    if cafile := env(ENV_SSL_CERT_FILE):
        return ssl.create_default_context(cafile=cafile)
    if capath := env(ENV_SSL_CERT_DIR):
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
