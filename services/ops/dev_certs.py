"""A development certificate authority and the certificates of a tracklayer deployment.

:func:`write_dev_certs` writes, into one directory, PEM files with fixed names
(issue 7, used by ``tracklayer certs`` and the demo's ``--tls``):

==========================  ==========================================================
``ca.crt`` / ``ca.key``     self-signed CA (basicConstraints CA, pathlen 0, keyCertSign)
``store.crt`` / ``.key``    track store server: SAN DNS ``localhost``, IP ``127.0.0.1``
``fusion-<id>.crt`` / .key  fusion service, server *and* client (it listens for sensors
                            and dials the store): SAN ``localhost``, ``127.0.0.1`` and
                            URI ``urn:tracklayer:fusion:<id>``
``sensor-<id>.crt`` / .key  sensor client: SAN URI ``urn:tracklayer:sensor:<id>``
``node-<name>.crt`` / .key  optional: one client certificate naming *every* sensor
                            (one URI each), for a process hosting many satellites
                            (``tracklayer sensors``, ``tracklayer replay``)
==========================  ==========================================================

Keys are EC P-256 (PKCS#8 PEM, unencrypted, mode 0600), certificates are valid
for ``days`` (a year) from a few minutes before now (clock skew) and never
beyond the CA's own expiry. Leaf certificates carry keyUsage digitalSignature
and extendedKeyUsage serverAuth / clientAuth as their role needs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracklayer.services.rpc.tls import (
    TlsError,
    fusion_uri,
    load_certificates,
    load_private_key,
    sensor_uri,
)

DEFAULT_FUSION_ID = "fusion"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
DEFAULT_DAYS = 365
CLOCK_SKEW = dt.timedelta(minutes=5)  # not-before margin for peers whose clocks run behind
_CN_MAX = 64  # X.520 upper bound on commonName length


@dataclass(frozen=True)
class WrittenFile:
    """One file :func:`write_dev_certs` wrote, with what it is (for the CLI listing)."""

    path: Path
    description: str


def check_id(kind: str, ident: str) -> str:
    """An id usable in a file name ``<kind>-<id>.crt`` and (percent-encoded) in a URN."""
    if not ident or ident != ident.strip():
        raise TlsError(f"--{kind}s: {kind} id {ident!r} is empty or has surrounding spaces")
    if any(c in ident for c in "/\\\0") or ident.startswith(".") or not ident.isprintable():
        raise TlsError(
            f"--{kind}s: {kind} id {ident!r} cannot be a file name "
            "(no '/', '\\', control characters or leading '.')"
        )
    return ident


def split_ids(text: str | None, kind: str) -> list[str]:
    """``"a,b,a"`` -> ``["a", "b"]`` (order kept, duplicates dropped), each id checked."""
    if not text:
        return []
    out: list[str] = []
    for part in text.split(","):
        ident = check_id(kind, part.strip())
        if ident not in out:
            out.append(ident)
    return out


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tracklayer development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_CN_MAX]),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    now: dt.datetime, days: int = DEFAULT_DAYS, common_name: str = "tracklayer development CA"
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (pathlen 0: it signs leaves only) and its key."""
    key = _new_key()
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    sans: Sequence[x509.GeneralName],
    *,
    server: bool,
    client: bool,
    now: dt.datetime,
    days: int = DEFAULT_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate signed by the CA with the given SANs and TLS roles, and its key."""
    if not sans:
        raise ValueError("a leaf certificate needs at least one subjectAltName")
    key = _new_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with permissions ``mode`` set before any byte is written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    flag = "--reuse-ca"
    _, certs = load_certificates(directory / "ca.crt", "CA certificate", flag)
    _, key = load_private_key(directory / "ca.key", flag)
    cert = certs[0]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, pub) != cert.public_key().public_bytes(der, pub):
        raise TlsError(f"{flag}: {directory / 'ca.key'} does not match {directory / 'ca.crt'}")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{flag}: {directory / 'ca.key'} is not an EC key")
    return cert, key


def _ca(
    d: Path,
    now: dt.datetime,
    days: int,
    *,
    force: bool,
    reuse_ca: bool,
    written: list[WrittenFile],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``d``: the existing one (``reuse_ca``) or a new one written there (an
    existing CA is replaced only with ``force``); new files are added to ``written``."""
    ca_crt, ca_key_path = d / "ca.crt", d / "ca.key"
    existing = [p for p in (ca_crt, ca_key_path) if p.exists()]
    if reuse_ca:
        if len(existing) != 2:
            raise TlsError(f"--reuse-ca: {ca_crt} and {ca_key_path} must both exist")
        ca_cert, ca_key = _load_ca(d)
        if now > ca_cert.not_valid_after_utc:
            raise TlsError(f"--reuse-ca: the CA in {ca_crt} has expired; make a new one")
        return ca_cert, ca_key
    if existing and not force:
        names = " and ".join(str(p) for p in existing)
        raise TlsError(
            f"{names} already exist: refusing to replace the CA (certificates it issued "
            "would stop working); use --force to replace it or --reuse-ca to sign with it"
        )
    ca_cert, ca_key = make_ca(now, days)
    _write_atomic(ca_key_path, _key_pem(ca_key), 0o600)
    _write_atomic(ca_crt, _cert_pem(ca_cert), 0o644)
    written += [
        WrittenFile(ca_crt, "development CA certificate (give it to every --tls-ca)"),
        WrittenFile(ca_key_path, "CA private key (keep it secret; only `certs` needs it)"),
    ]
    return ca_cert, ca_key


class _Leaves:
    """Issues leaf certificates signed by one CA into one directory."""

    def __init__(self, d: Path, ca_cert, ca_key, now: dt.datetime, days: int, written) -> None:
        self.d, self.ca_cert, self.ca_key = d, ca_cert, ca_key
        self.now, self.days, self.written = now, days, written

    def issue(
        self, stem: str, cn: str, sans: list[x509.GeneralName], server: bool, client: bool, what
    ) -> None:
        """Write ``stem.crt`` and ``stem.key`` and list them in ``written``."""
        d = self.d
        cert, key = make_leaf(
            self.ca_cert, self.ca_key, cn, sans, server=server, client=client, now=self.now,
            days=self.days,
        )  # fmt: skip
        _write_atomic(d / f"{stem}.key", _key_pem(key), 0o600)
        _write_atomic(d / f"{stem}.crt", _cert_pem(cert), 0o644)
        self.written.append(WrittenFile(d / f"{stem}.crt", what))
        self.written.append(WrittenFile(d / f"{stem}.key", f"private key of {stem}.crt"))

    def issue_all(
        self,
        hosts: Sequence[str],
        fusion_list: list[str],
        sensor_ids: list[str],
        node: str | None,
    ) -> None:
        """The store's, each fusion service's, each sensor's and the node's certificate."""
        host_names = [_general_name(h) for h in dict.fromkeys(hosts)]
        hosts_text = ", ".join(str(h.value) for h in host_names)
        self.issue(
            "store",
            "tracklayer track store",
            host_names,
            server=True,
            client=False,
            what=f"track store server certificate (SAN {hosts_text})",
        )
        for fid in fusion_list:
            uri = fusion_uri(fid)
            self.issue(
                f"fusion-{fid}",
                f"tracklayer fusion {fid}",
                [*host_names, x509.UniformResourceIdentifier(uri)],
                server=True,
                client=True,
                what=f"fusion server and client certificate (SAN {hosts_text}, {uri})",
            )
        for sid in sensor_ids:
            uri = sensor_uri(sid)
            self.issue(
                f"sensor-{sid}",
                f"tracklayer sensor {sid}",
                [x509.UniformResourceIdentifier(uri)],
                server=False,
                client=True,
                what=f"sensor client certificate (SAN {uri})",
            )
        if node is not None:
            self.issue(
                f"node-{node}",
                f"tracklayer sensor node {node}",
                [x509.UniformResourceIdentifier(sensor_uri(s)) for s in sensor_ids],
                server=False,
                client=True,
                what=f"sensor node client certificate ({len(sensor_ids)} sensor URIs)",
            )


def write_dev_certs(
    directory: str | os.PathLike[str],
    sensors: Iterable[str],
    fusion_ids: Iterable[str] = (DEFAULT_FUSION_ID,),
    *,
    force: bool = False,
    reuse_ca: bool = False,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = DEFAULT_DAYS,
    now: dt.datetime | None = None,
    node: str | None = None,
) -> list[WrittenFile]:
    """Create the CA (or reuse ``DIR/ca.*``) and every certificate; returns the files written.

    An existing ``ca.crt``/``ca.key`` is an error unless ``force`` (replace it:
    certificates issued by the old CA stop working) or ``reuse_ca`` (sign the
    new certificates with it). ``hosts``: DNS names / IP addresses put in the
    server certificates (store and fusion). ``node``: also write
    ``node-<node>.crt``, one client certificate naming every sensor.
    """
    if force and reuse_ca:
        raise TlsError("--force and --reuse-ca: give one or the other")
    if days <= 0:
        raise TlsError(f"--days: must be positive, got {days}")
    d = Path(directory)
    sensor_ids = [check_id("sensor", s) for s in dict.fromkeys(sensors)]
    fusion_list = [check_id("fusion", f) for f in dict.fromkeys(fusion_ids)] or [DEFAULT_FUSION_ID]
    if node is not None:
        check_id("node", node)
        if not sensor_ids:
            raise TlsError("--node: needs the sensors it hosts (--sensors)")
    if d.exists() and not d.is_dir():
        raise TlsError(f"DIR: {d} exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    written: list[WrittenFile] = []
    ca_cert, ca_key = _ca(d, now, days, force=force, reuse_ca=reuse_ca, written=written)

    leaves = _Leaves(d, ca_cert, ca_key, now, days, written)
    leaves.issue_all(hosts, fusion_list, sensor_ids, node)
    return written
