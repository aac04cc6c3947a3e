"""A small local certificate authority and the server certificates it signs.

``flask --app wsgi registry cert NAME...`` fills the TLS folder
(``instance/tls`` unless ``REGISTRY_TLS_DIR`` names another)::

    ca.key          the authority's private key (mode 0600), made on the first run
    trust/ca.crt    the authority's certificate: what docker and skopeo trust
    server.key      the server's private key (mode 0600)
    server.crt      the server's certificate for NAME..., signed by the authority

The authority is kept across runs, so a client that trusts ``trust/ca.crt``
keeps trusting every server certificate issued later. ``trust/`` holds nothing
but that certificate, so it can be handed to ``skopeo --cert-dir`` as it is.
"""

import ipaddress
import os
import re
import secrets
import shlex
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
# The longest lifetime that browsers and Apple's clients accept for a server.
SERVER_VALIDITY = timedelta(days=397)
# Certificates start a little in the past so that a client whose clock lags
# slightly behind does not see them as not yet valid.
CLOCK_SKEW = timedelta(minutes=5)

LABEL_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
HOSTNAME_MAX_LENGTH = 253
KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644


class CertificateError(Exception):
    """A request refused: a bad host name, or files that do not fit together."""


class TLSFiles:
    """Where the authority and the server certificate live in one TLS folder."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.ca_key = self.folder / "ca.key"
        self.trust_folder = self.folder / "trust"
        self.ca_certificate = self.trust_folder / "ca.crt"
        self.server_key = self.folder / "server.key"
        self.server_certificate = self.folder / "server.crt"


@dataclass(frozen=True)
class IssuedCertificate:
    """What a run left in the TLS folder, and whether it made or kept it."""

    files: TLSFiles
    names: tuple
    not_after: datetime
    created_authority: bool
    created_server: bool


def parse_name(text):
    """Return the SAN entry for a host name or IP address, or raise."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None and not getattr(address, "scope_id", None):
        return x509.IPAddress(address)
    hostname = text.lower()
    labels = hostname.split(".")
    valid = (
        len(hostname) <= HOSTNAME_MAX_LENGTH
        and all(LABEL_PATTERN.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )
    if not valid:
        raise CertificateError(f"{text!r} is not a host name or an IP address")
    return x509.DNSName(hostname)


def parse_names(texts):
    """Return the SAN entries for ``texts``, in order, without repeats."""
    if not texts:
        raise CertificateError("name at least one host name or IP address")
    entries = []
    for text in texts:
        entry = parse_name(text)
        if entry not in entries:
            entries.append(entry)
    return entries


def issue_certificates(folder, names, force=False, now=None):
    """Make the authority if there is none, and a server certificate for names.

    An existing server certificate for exactly these names is kept; one for
    other names is replaced only with ``force``.
    """
    entries = parse_names(names)
    files = TLSFiles(folder)
    now = now or datetime.now(timezone.utc)

    ca_key, ca_certificate, created_authority = load_or_create_authority(files, now)
    existing = read_server_certificate(files)
    if existing is not None and not force:
        check_same_names(files, existing, entries)
        return describe(files, existing, created_authority, created_server=False)

    server_key = ec.generate_private_key(ec.SECP256R1())
    certificate = sign_server(server_key, ca_key, ca_certificate, entries, now)
    write_file(files.server_key, key_bytes(server_key), KEY_MODE)
    write_file(files.server_certificate, certificate_bytes(certificate))
    return describe(files, certificate, created_authority, created_server=True)


def describe(files, certificate, created_authority, created_server):
    """Return the IssuedCertificate for the server certificate in files."""
    names = tuple(str(value) for value in san_values(certificate))
    return IssuedCertificate(
        files,
        names,
        certificate.not_valid_after_utc,
        created_authority,
        created_server,
    )


def load_or_create_authority(files, now):
    """Return the authority's key and certificate, and whether they are new."""
    if not files.ca_certificate.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = sign_authority(key, now)
        # The key goes first: a certificate on disk always has its key beside it.
        write_file(files.ca_key, key_bytes(key), KEY_MODE)
        write_file(files.ca_certificate, certificate_bytes(certificate))
        return key, certificate, True
    if not files.ca_key.exists():
        raise CertificateError(f"{files.ca_certificate} has no key at {files.ca_key}")
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    certificate = x509.load_pem_x509_certificate(files.ca_certificate.read_bytes())
    if key.public_key() != certificate.public_key():
        message = f"{files.ca_key} is not the key of {files.ca_certificate}"
        raise CertificateError(message)
    return key, certificate, False


def read_server_certificate(files):
    """Return the server certificate on disk, or None when there is none."""
    if not files.server_certificate.exists():
        return None
    return x509.load_pem_x509_certificate(files.server_certificate.read_bytes())


def check_same_names(files, certificate, entries):
    """Raise unless the certificate names exactly these SAN entries."""
    held = san_values(certificate)
    if set(held) != {entry.value for entry in entries}:
        shown = ", ".join(str(value) for value in held)
        raise CertificateError(
            f"{files.server_certificate} is for {shown}; pass --force to replace it"
        )


def san_values(certificate):
    """The host names and addresses a certificate's SAN extension names."""
    extension = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return [entry.value for entry in extension.value]


def sign_authority(key, now):
    """Return a self-signed certificate for a CA that signs only servers."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flask-oci-registry"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"Local registry CA {secrets.token_hex(4)}"
            ),
        ]
    )
    builder = (
        base_builder(name, key.public_key(), now, CA_VALIDITY)
        .issuer_name(name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(signs_certificates=True), critical=True)
    )
    return builder.sign(key, hashes.SHA256())


def sign_server(key, ca_key, ca_certificate, entries, now):
    """Return a serverAuth certificate for the SAN entries, signed by the CA."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, str(entries[0].value))]
    )
    authority_key = x509.AuthorityKeyIdentifier.from_issuer_public_key(
        ca_key.public_key()
    )
    builder = (
        base_builder(subject, key.public_key(), now, SERVER_VALIDITY)
        .issuer_name(ca_certificate.subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(authority_key, critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def key_usage(signs_certificates):
    """Digital signatures, and certificate and CRL signing for an authority."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def base_builder(subject, public_key, now, validity):
    """A certificate builder with the fields every certificate here shares."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    )


def key_bytes(key):
    """PEM bytes of an unencrypted private key, as gunicorn reads it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_bytes(certificate):
    """PEM bytes of a certificate."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_file(path, data, mode=CERTIFICATE_MODE):
    """Write data to path atomically: a temporary file, flushed, then renamed.

    The temporary file is made with mode 0600, so a key is never readable by
    others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def host_port(name, port):
    """HOST:PORT as docker names a registry; IPv6 addresses in brackets."""
    if ":" in name:
        return f"[{name}]:{port}"
    return f"{name}:{port}"


def gunicorn_flags(files):
    """The gunicorn flags that serve the server certificate in files."""
    return [
        "--certfile",
        str(files.server_certificate.resolve()),
        "--keyfile",
        str(files.server_key.resolve()),
    ]


def usage_text(issued, port):
    """Tell the operator what was written and how servers and clients use it."""
    files = issued.files
    made = "created" if issued.created_server else "kept"
    lines = [
        f"CA certificate: {files.ca_certificate.resolve()}"
        + (" (created)" if issued.created_authority else ""),
        f"Server certificate for {', '.join(issued.names)} ({made}, valid until "
        f"{issued.not_after:%Y-%m-%d}): {files.server_certificate.resolve()}",
        "",
        "Serve over TLS with these gunicorn flags:",
        "  gunicorn " + shlex.join(gunicorn_flags(files)),
        "",
        "Docker trusts the CA when it is copied, as root, to:",
    ]
    lines += [
        f"  /etc/docker/certs.d/{host_port(name, port)}/ca.crt" for name in issued.names
    ]
    lines += [
        "",
        "skopeo trusts it with:",
        f"  --cert-dir {shlex.quote(str(files.trust_folder.resolve()))}",
    ]
    return "\n".join(lines)
