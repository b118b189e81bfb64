"""The lab's own certificate authority, for https endpoints on loopback.

``LocalRegions(tls=True)`` makes one :class:`LabCertificates` when it
starts: a CA made for this lab alone and a server certificate it signs for
the lab's loopback address. The fault proxies terminate TLS with it (moto
behind them still speaks plain HTTP), and the lab's clients and sessions
trust the CA through botocore's ``ca_bundle`` setting, the same one
``AWS_CA_BUNDLE`` sets: what a client meets is real TLS, with a real
verification of the certificate. Nothing here is trusted by anything else
on the machine; the files live in a temporary directory removed with the
lab.

Uses the ``cryptography`` package, which moto (the ``testing`` extra)
already depends on.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path
from typing import Any

VALID_FOR = datetime.timedelta(days=90)  # a lab may run for a long soak


class LabCertificates:
    """A CA and a server certificate for ``host``, written to a temporary
    directory until :meth:`remove`.

    :param host: the loopback address the server certificate names (with
        ``localhost``).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self._directory = tempfile.TemporaryDirectory(prefix="regionproxy-lab-tls-")
        directory = Path(self._directory.name)
        now = datetime.datetime.now(datetime.UTC)
        earlier = now - datetime.timedelta(minutes=5)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regionproxy lab CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(earlier)
            .not_valid_after(now + VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(earlier)
            .not_valid_after(now + VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        self.ca_bundle = str(directory / "ca.pem")
        self.certificate = str(directory / "server.pem")
        self.key = str(directory / "server-key.pem")
        Path(self.ca_bundle).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        Path(self.certificate).write_bytes(server.public_bytes(serialization.Encoding.PEM))
        Path(self.key).write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )

    def __repr__(self) -> str:
        return f"LabCertificates(ca_bundle={self.ca_bundle!r})"

    def server_context(self) -> ssl.SSLContext:
        """A server-side context that presents the lab's certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context

    def remove(self) -> None:
        self._directory.cleanup()


def _key_usage(*, cert_sign: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
