"""TLS for the seat WebSocket: the configured certificate, or a development one.

With ``acd.tls.cert`` and ``acd.tls.key`` set, those PEM files are used.  With
neither, a self-signed certificate for ``localhost`` / ``127.0.0.1`` / ``::1`` is
generated once under ``<state_dir>/tls/`` (and again when it has expired), so
``make run`` serves wss:// with no set-up.  Clients of a development server
trust ``<state_dir>/tls/dev-cert.pem``.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

__all__ = ["TlsFiles", "dev_certificate", "server_context_factory"]

DEV_CERT_NAME = "dev-cert.pem"
DEV_KEY_NAME = "dev-key.pem"


class TlsFiles:
    def __init__(self, cert: Path, key: Path, generated: bool):
        self.cert = cert
        self.key = key
        self.generated = generated


def _expired(cert_path: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)


def dev_certificate(directory: Path) -> TlsFiles:
    """Return the development cert/key under ``directory``, creating them if needed."""
    cert_path = directory / DEV_CERT_NAME
    key_path = directory / DEV_KEY_NAME
    if cert_path.exists() and key_path.exists() and not _expired(cert_path):
        return TlsFiles(cert_path, key_path, generated=False)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callcenter development")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_tmp = key_path.with_suffix(".tmp")
    key_tmp.touch(mode=0o600)
    key_tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key_tmp.replace(key_path)
    cert_tmp = cert_path.with_suffix(".tmp")
    cert_tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_tmp.replace(cert_path)
    return TlsFiles(cert_path, key_path, generated=True)


@implementer(IOpenSSLContextFactory)
class _ServerContextFactory:
    """An old-style Twisted context factory (``getContext()``), accepted by
    ``reactor.listenSSL``, ``SSL4ServerEndpoint`` and autobahn's ``listenWS``.

    Loads the files with pyOpenSSL's file APIs so that a chain file works and
    no deprecated pyOpenSSL X509/PKey objects are involved.
    """

    isClient = 0

    def __init__(self, cert: Path, key: Path):
        from OpenSSL import SSL

        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        ctx.use_certificate_chain_file(str(cert).encode())
        ctx.use_privatekey_file(str(key).encode())
        ctx.check_privatekey()
        self._context = ctx

    def getContext(self):
        return self._context


def server_context_factory(cert: Path, key: Path):
    """A Twisted TLS server context factory for PEM files (``cert`` may hold a chain)."""
    return _ServerContextFactory(Path(cert), Path(key))
