"""Running a TestCase's tests on TLS too: ``class XOverTlsTest(OverTls,
XTest)`` runs every test of ``XTest`` with the scripted servers speaking
TLS (tls_peer.py), the embedded server serving TLS, and the clients made
by ``self.client`` / ``self.async_client`` connecting with TLS, through
the Rust core (``client_path = "native"``) or Python's ``ssl``
(``"python"``). The certificates are made once per process.
"""

from __future__ import annotations

import atexit
import ssl
import tempfile
from typing import Optional

from .certificates import Certificates, require

__all__ = ["OverTls", "certificates", "server_context"]

_CERTIFICATES: Optional[Certificates] = None


def certificates() -> Certificates:
    """The test certificates (skips the test where they cannot be made)."""
    global _CERTIFICATES
    require()
    if _CERTIFICATES is None:
        directory = tempfile.TemporaryDirectory()
        atexit.register(directory.cleanup)
        _CERTIFICATES = Certificates(directory.name)
    return _CERTIFICATES


def server_context() -> ssl.SSLContext:
    """A server context with the test server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates().server.cert, certificates().server.key)
    return context


class OverTls:
    """Mixed in before a ``tests.support.TestCase``."""

    #: "native" (the Rust core's TLS) or "python" (an ssl.SSLContext).
    client_path = "native"

    def tls_options(self) -> dict:
        ca = certificates().ca.cert
        if self.client_path == "native":
            return {"tls_ca": ca}
        return {"ssl": ssl.create_default_context(cafile=ca)}

    def server(self, script=None, **kwargs):
        kwargs.setdefault("tls", server_context())
        return super().server(script, **kwargs)  # type: ignore[misc]

    def metrics_server(self, **kwargs):
        kwargs.setdefault("tls", server_context())
        return super().metrics_server(**kwargs)  # type: ignore[misc]

    def embedded_server(self, **kwargs):
        kwargs.setdefault("tls_cert", certificates().server.cert)
        kwargs.setdefault("tls_key", certificates().server.key)
        return super().embedded_server(**kwargs)  # type: ignore[misc]
