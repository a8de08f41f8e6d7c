"""Certificates made at test time for the TLS tests: two CAs (a trusted one
and a stranger), server and client certificates signed by each, and expired
and misnamed ones, written as PEM files into a directory.

Needs the ``cryptography`` package (``.ci/run`` installs it); tests call
:func:`require` to be skipped, saying so, where it is missing.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from .dependencies import unavailable

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - depends on the machine
    x509 = None  # type: ignore[assignment]

__all__ = ["Pair", "Certificates", "require", "PROTECTED_ADDRESS"]

#: The non-loopback address the protected-mode tests give a network
#: namespace of their own; the server certificate names it too.
PROTECTED_ADDRESS = "10.213.0.1"


def require() -> None:
    """Skips the calling test when certificates cannot be made here."""
    if x509 is None:
        unavailable("the 'cryptography' package is not installed: "
                    "pip install cryptography to run the TLS tests")


@dataclass
class Pair:
    """A certificate file and its key file."""
    cert: str
    key: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class _Authority:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, name: str, *, client: bool, names: Optional[List[str]] = None,
              expired: bool = False) -> Tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        if expired:
            start, end = _now() - datetime.timedelta(days=10), _now() - datetime.timedelta(days=2)
        else:
            start, end = _now() - datetime.timedelta(days=1), _now() + datetime.timedelta(days=30)
        alternative: List[x509.GeneralName] = []
        for entry in names or []:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                alternative.append(x509.DNSName(entry))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if alternative:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative),
                                            critical=False)
        return builder.sign(self.key, hashes.SHA256()), key


def _self_signed(name: str, names: List[str]) -> Tuple[Any, Any]:
    """A server certificate signed by its own key, not by any CA."""
    authority = _Authority(name)
    alternative = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() or ":" in n
                   else x509.DNSName(n) for n in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(authority.name).issuer_name(authority.name)
        .public_key(authority.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=1))
        .not_valid_after(_now() + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return cert, authority.key


def _write(directory: pathlib.Path, stem: str, cert: Any, key: Any) -> Pair:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Pair(str(cert_path), str(key_path))


class Certificates:
    """Every certificate the TLS tests use, as files in ``directory``.

    ``ca``: the trusted CA (``ca.cert``; its key is not written).
    ``server``: for localhost, 127.0.0.1, ::1 and :data:`PROTECTED_ADDRESS`.
    ``client``: a client certificate signed by ``ca``.
    ``stranger_ca``, ``stranger_server``, ``stranger_client``: the same by
    another CA. ``expired_server``, ``expired_client``: signed by ``ca``,
    expired. ``misnamed_server``: signed by ``ca`` for another host name.
    ``self_signed_server``: signed by its own key.
    """

    def __init__(self, directory: str) -> None:
        require()
        path = pathlib.Path(directory)
        names = ["localhost", "127.0.0.1", "::1", PROTECTED_ADDRESS]
        ca, stranger = _Authority("metrics test CA"), _Authority("stranger CA")
        self.ca = _write(path, "ca", ca.cert, ca.key)
        self.stranger_ca = _write(path, "stranger-ca", stranger.cert, stranger.key)
        self.server = _write(path, "server", *ca.issue("server", client=False, names=names))
        self.client = _write(path, "client", *ca.issue("client", client=True))
        self.stranger_server = _write(path, "stranger-server",
                                      *stranger.issue("server", client=False, names=names))
        self.stranger_client = _write(path, "stranger-client",
                                      *stranger.issue("client", client=True))
        self.expired_server = _write(path, "expired-server",
                                     *ca.issue("server", client=False, names=names, expired=True))
        self.expired_client = _write(path, "expired-client",
                                     *ca.issue("client", client=True, expired=True))
        self.self_signed_server = _write(path, "self-signed-server",
                                         *_self_signed("server", names))
        self.misnamed_server = _write(path, "misnamed-server",
                                      *ca.issue("server", client=False,
                                                names=["elsewhere.example"]))
