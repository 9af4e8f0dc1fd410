"""A small certificate authority for a fleet: the CA, the router's server certificate, client certificates.

X.509 v3 with the extensions rustls (Zenoh's TLS) insists on: a client certificate without
``extendedKeyUsage=clientAuth`` and v3 extensions is refused at the handshake (measured here). Keys
are ECDSA P-256, written with mode 0600. For production an owner may use their own PKI instead;
the router only needs PEM files.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EnergizeOS fleet"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return Issued(cert_path, key_path)


def _builder(subject: str, issuer: x509.Name, public_key, days: float) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days)))


def make_ca(directory: Path, name: str = "EnergizeOS fleet CA", days: float = 3650) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(name, _name(name), key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(directory, "ca", cert, key)


def _load_ca(ca: Issued) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key}: expected an EC private key")
    return cert, key


def _issue(ca: Issued, directory: Path, stem: str, common_name: str, usage: x509.ObjectIdentifier,
           alt_names: list[str], days: float) -> Issued:
    ca_cert, ca_key = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(common_name, ca_cert.subject, key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if alt_names:
        sans: list[x509.GeneralName] = []
        for alt in alt_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(alt)))
            except ValueError:
                sans.append(x509.DNSName(alt))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def issue_server(ca: Issued, directory: Path, names: list[str], days: float = 825) -> Issued:
    """The router's certificate; ``names`` are the DNS names and IP addresses the sites connect to."""
    if not names:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    return _issue(ca, directory, "server", names[0], ExtendedKeyUsageOID.SERVER_AUTH, names, days)


def issue_client(ca: Issued, directory: Path, user: str, days: float = 825) -> Issued:
    """A party's certificate (common name = its user name at the router)."""
    return _issue(ca, directory, f"client-{user}", user, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)
