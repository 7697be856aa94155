"""TLS material for every tracklayer server and client: the ONE module (DESIGN §4, §9).

- :class:`TlsConfig` ``(cert, key, ca)``: the three PEM files given together by
  ``--tls-cert``, ``--tls-key``, ``--tls-ca`` (:func:`add_tls_arguments`,
  :meth:`TlsConfig.from_args`); ``None`` means plaintext.
- :func:`load_tls_material`: reads and checks the files (present, readable,
  PEM, key matching the certificate, certificate issued by the CA and in its
  validity period), every error a :class:`TlsError` naming the file.
- :meth:`TlsConfig.server_credentials` (mutual TLS: ``require_client_auth``)
  and :meth:`TlsConfig.channel_credentials`; :func:`create_channel` builds a
  ``grpc.aio`` channel, secure or plaintext.
- Identities are SAN URIs of the peer's certificate:
  ``urn:tracklayer:sensor:<id>`` and ``urn:tracklayer:fusion:<id>`` (ids
  percent-encoded, :func:`sensor_uri`, :func:`fusion_uri`);
  :func:`sensor_identity` / :func:`fusion_identity` read them from a
  ``grpc.aio`` servicer context after the handshake has verified the chain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import grpc

from tracklayer.services.errors import UserError

# cryptography (~0.07 CPU s to import) is imported where TLS files or peer certificates
# are read, so a plaintext service does not load it before answering SERVING (issue 15).
if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger("tracklayer.services.tls")

URN_PREFIX = "urn:tracklayer:"
SENSOR_KIND = "sensor"
FUSION_KIND = "fusion"
# Auth-context properties (gRPC core names): the peer's SAN URIs, its leaf certificate.
_URI_PROPERTY = "peer_uri"
_PEM_CERT_PROPERTY = "x509_pem_cert"


class TlsError(UserError):
    """Bad TLS material or flags; the message names the file or flag (CLI exit 2)."""


# ---------------------------------------------------------------- identities


def identity_uri(kind: str, ident: str) -> str:
    """``urn:tracklayer:<kind>:<id>`` with ``id`` percent-encoded (RFC 3986 unreserved kept)."""
    if not ident:
        raise ValueError(f"{kind} id: must not be empty")
    return f"{URN_PREFIX}{kind}:{quote(ident, safe='')}"


def sensor_uri(sensor_id: str) -> str:
    """The SAN URI naming sensor ``sensor_id``: ``urn:tracklayer:sensor:<id>``."""
    return identity_uri(SENSOR_KIND, sensor_id)


def fusion_uri(fusion_id: str) -> str:
    """The SAN URI naming fusion service ``fusion_id``: ``urn:tracklayer:fusion:<id>``."""
    return identity_uri(FUSION_KIND, fusion_id)


def parse_identity_uri(uri: str) -> tuple[str, str] | None:
    """``urn:tracklayer:<kind>:<id>`` -> (kind, decoded id); None for any other text."""
    if not uri.startswith(URN_PREFIX):
        return None
    kind, sep, ident = uri[len(URN_PREFIX) :].partition(":")
    if not sep or not kind or not ident:
        return None
    return kind, unquote(ident)


def certificate_uris(cert: x509.Certificate) -> list[str]:
    """Every URI in the certificate's subjectAltName (empty when it has none)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def identities_of(uris: Sequence[str], kind: str) -> frozenset[str]:
    """The ids of ``kind`` (``"sensor"``, ``"fusion"``) among tracklayer URNs in ``uris``."""
    out = set()
    for uri in uris:
        parsed = parse_identity_uri(uri)
        if parsed is not None and parsed[0] == kind:
            out.add(parsed[1])
    return frozenset(out)


def peer_uris(context: Any) -> list[str]:
    """SAN URIs of the client certificate of a ``grpc.aio`` (or sync) servicer context.

    Only URIs count, never DNS names or IP addresses: gRPC's ``peer_uri``
    auth property, else the URIs of the verified leaf certificate
    (``x509_pem_cert``). Empty on a plaintext connection or without a client
    certificate.
    """
    try:
        auth = context.auth_context()
    except Exception:  # noqa: BLE001 - a context without transport security
        return []
    if _URI_PROPERTY in auth:
        return [bytes(u).decode("ascii", "replace") for u in auth[_URI_PROPERTY]]
    pems = auth.get(_PEM_CERT_PROPERTY) or []
    if not pems:
        return []
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(bytes(pems[0]))
    except ValueError:
        return []
    return certificate_uris(cert)


def peer_identities(context: Any, kind: str) -> frozenset[str]:
    """Every ``kind`` id (``"sensor"``/``"fusion"``) the peer's certificate names."""
    return identities_of(peer_uris(context), kind)


def _single(ids: frozenset[str]) -> str | None:
    return next(iter(ids)) if len(ids) == 1 else None


def sensor_identity(context: Any) -> str | None:
    """The sensor id of the peer's certificate (``urn:tracklayer:sensor:<id>``).

    None when there is no client certificate, it names no sensor, or it names
    more than one (use :func:`peer_identities` for multi-sensor certificates).
    """
    return _single(peer_identities(context, SENSOR_KIND))


def fusion_identity(context: Any) -> str | None:
    """The fusion id of the peer's certificate (``urn:tracklayer:fusion:<id>``), else None."""
    return _single(peer_identities(context, FUSION_KIND))


def is_secure(context: Any) -> bool:
    """True when the call came over TLS (the auth context names a transport security type)."""
    try:
        auth = context.auth_context()
    except Exception:  # noqa: BLE001
        return False
    kinds = auth.get("transport_security_type") or []
    return any(bytes(k) == b"ssl" for k in kinds)


# ---------------------------------------------------------------- loading files


def _read(path: Path, what: str, flag: str) -> bytes:
    if not path.exists():
        raise TlsError(f"{flag}: {what} file {path} does not exist")
    if path.is_dir():
        raise TlsError(f"{flag}: {what} file {path} is a directory")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag}: cannot read {what} file {path}: {exc.strerror}") from None
    if not data.strip():
        raise TlsError(f"{flag}: {what} file {path} is empty")
    return data


def load_certificates(path: Path, what: str = "certificate", flag: str = "--tls-cert"):
    """All PEM certificates in ``path`` (leaf first); TlsError naming the file otherwise."""
    data = _read(path, what, flag)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        hint = " (it holds a private key)" if b"PRIVATE KEY-----" in data else ""
        raise TlsError(f"{flag}: {what} file {path} is not a PEM certificate{hint}")
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{flag}: {what} file {path} is not valid PEM: {exc}") from None
    return data, certs


def load_private_key(path: Path, flag: str = "--tls-key"):
    """The unencrypted PEM private key in ``path`` (EC or RSA); TlsError naming the file."""
    data = _read(path, "private key", flag)
    if b"PRIVATE KEY-----" not in data:
        hint = " (it holds a certificate)" if b"CERTIFICATE-----" in data else ""
        raise TlsError(f"{flag}: private key file {path} is not a PEM private key{hint}")
    if b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise TlsError(f"{flag}: private key file {path} is encrypted; give an unencrypted key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{flag}: private key file {path} is not a valid PEM key: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - UnsupportedAlgorithm and friends
        raise TlsError(f"{flag}: private key file {path} cannot be loaded: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise TlsError(f"{flag}: private key file {path}: only EC and RSA keys are supported")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "event=tls_key_permissions file=%s mode=%o: readable by group/others; chmod 600",
            path,
            stat.S_IMODE(mode),
        )
    return data, key


def _spki(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class TlsMaterial:
    """Checked PEM bytes of one TLS configuration, ready for gRPC."""

    cert_chain: bytes
    private_key: bytes
    root_certificates: bytes
    leaf: x509.Certificate

    @property
    def uris(self) -> list[str]:
        """SAN URIs of our own certificate (our identity as the peer sees it)."""
        return certificate_uris(self.leaf)


def load_tls_material(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    ca: str | os.PathLike[str],
    *,
    now: dt.datetime | None = None,
) -> TlsMaterial:
    """Read and check the three PEM files; every problem is a TlsError naming the file.

    Checks: each file exists, is readable and PEM of the right kind; the key
    matches the certificate; the chain leads to a certificate in the CA file;
    the certificate is within its validity period at ``now`` (UTC).
    """
    cert_path, key_path, ca_path = Path(cert), Path(key), Path(ca)
    chain_pem, chain = load_certificates(cert_path, "certificate", "--tls-cert")
    key_pem, private_key = load_private_key(key_path, "--tls-key")
    ca_pem, cas = load_certificates(ca_path, "CA certificate", "--tls-ca")
    leaf = chain[0]
    if _spki(private_key.public_key()) != _spki(leaf.public_key()):
        raise TlsError(
            f"--tls-key: private key file {key_path} does not match certificate {cert_path}"
        )
    for child, parent in zip(chain, chain[1:], strict=False):
        if not _issued_by(child, parent):
            raise TlsError(
                f"--tls-cert: certificate file {cert_path}: chain is out of order "
                f"({child.subject.rfc4514_string()} not issued by "
                f"{parent.subject.rfc4514_string()})"
            )
    top = chain[-1]
    if not any(_spki(top.public_key()) == _spki(c.public_key()) or _issued_by(top, c) for c in cas):
        raise TlsError(
            f"--tls-cert: certificate file {cert_path} was not issued by the CA in {ca_path}"
        )
    now = now or dt.datetime.now(dt.UTC)
    if now < leaf.not_valid_before_utc:
        raise TlsError(
            f"--tls-cert: certificate file {cert_path} is not valid before "
            f"{leaf.not_valid_before_utc.isoformat()}"
        )
    if now > leaf.not_valid_after_utc:
        raise TlsError(
            f"--tls-cert: certificate file {cert_path} expired on "
            f"{leaf.not_valid_after_utc.isoformat()}"
        )
    return TlsMaterial(
        cert_chain=chain_pem, private_key=key_pem, root_certificates=ca_pem, leaf=leaf
    )


# ---------------------------------------------------------------- config and credentials

TLS_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca")


@dataclass(frozen=True)
class TlsConfig:
    """Paths of our certificate (chain), its private key and the CA bundle (PEM)."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TlsConfig | None:
        """From ``--tls-cert/--tls-key/--tls-ca``: all three, or none (plaintext -> None)."""
        values = {
            flag: getattr(args, flag.lstrip("-").replace("-", "_"), None) for flag in TLS_FLAGS
        }
        given = [f for f, v in values.items() if v]
        if not given:
            return None
        if len(given) != len(TLS_FLAGS):
            missing = [f for f in TLS_FLAGS if f not in given]
            raise TlsError(
                f"{', '.join(missing)}: required together with {', '.join(given)} "
                "(mutual TLS needs all of --tls-cert, --tls-key and --tls-ca)"
            )
        config = cls(
            Path(values["--tls-cert"]), Path(values["--tls-key"]), Path(values["--tls-ca"])
        )
        config.material  # noqa: B018 - check the files now, at start-up, naming the bad one
        return config

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], name: str) -> TlsConfig:
        """``DIR/<name>.crt``, ``DIR/<name>.key`` and ``DIR/ca.crt`` (as ``tracklayer certs``)."""
        d = Path(directory)
        return cls(d / f"{name}.crt", d / f"{name}.key", d / "ca.crt")

    @cached_property
    def material(self) -> TlsMaterial:
        """The checked PEM contents (read once; TlsError naming the file)."""
        return load_tls_material(self.cert, self.key, self.ca)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS server credentials: clients must present a certificate from the CA."""
        m = self.material
        return grpc.ssl_server_credentials(
            [(m.private_key, m.cert_chain)],
            root_certificates=m.root_certificates,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Client credentials: trust the CA, present our certificate chain."""
        m = self.material
        return grpc.ssl_channel_credentials(
            root_certificates=m.root_certificates,
            private_key=m.private_key,
            certificate_chain=m.cert_chain,
        )

    def identities(self, kind: str) -> frozenset[str]:
        """The ``kind`` ids (``"sensor"``/``"fusion"``) our own certificate names."""
        return identities_of(self.material.uris, kind)

    def require_identities(self, kind: str, ids: Sequence[str]) -> None:
        """TlsError naming ``--tls-cert`` unless our certificate names every ``kind`` id in ``ids``.

        Catches at start-up what the peer would refuse later (PERMISSION_DENIED).
        """
        have = self.identities(kind)
        missing = [i for i in dict.fromkeys(ids) if i not in have]
        if not missing:
            return
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        named = ", ".join(sorted(have)) if have else f"no {kind}"
        raise TlsError(
            f"--tls-cert: certificate file {self.cert} names {named}, not {kind} {shown} "
            f"(SAN URI {identity_uri(kind, missing[0])}); make one with `tracklayer certs`"
        )

    def describe(self) -> str:
        """One human line: the certificate file and the identities it carries."""
        uris = self.material.uris
        return f"mTLS cert={self.cert}" + (f" identity={','.join(uris)}" if uris else "")


def server_credentials(tls: TlsConfig | None) -> grpc.ServerCredentials | None:
    """Server credentials for ``tls``, or None for plaintext."""
    return None if tls is None else tls.server_credentials()


def channel_credentials(tls: TlsConfig | None) -> grpc.ChannelCredentials | None:
    """Channel credentials for ``tls``, or None for plaintext."""
    return None if tls is None else tls.channel_credentials()


def transport_description(tls: TlsConfig | None) -> str:
    """For start-up log lines: ``"mTLS ..."`` or ``"plaintext: no TLS"``."""
    return "plaintext: no TLS" if tls is None else tls.describe()


def create_channel(
    target: str,
    tls: TlsConfig | None,
    options: Sequence[tuple[str, Any]] = (),
    *,
    server_name: str | None = None,
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``target``: mutual TLS with ``tls``, plaintext when None.

    ``server_name`` overrides the name checked against the server certificate's
    SANs (for dialling an address the certificate does not list).
    """
    opts = list(options)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=opts)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=opts)


def add_tls_arguments(parser: argparse.ArgumentParser, *, role: str = "server") -> None:
    """Add ``--tls-cert``, ``--tls-key``, ``--tls-ca`` (all three or none) to ``parser``.

    ``role``: ``"server"`` or ``"client"``, only for the help text.
    """
    group = parser.add_argument_group(
        "mutual TLS",
        "give all three to use mTLS (files as made by `tracklayer certs`); "
        "none of them: plaintext, for local use only",
    )
    peer = "clients must present" if role == "server" else "the server must present"
    group.add_argument(
        "--tls-cert",
        metavar="FILE.crt",
        default=None,
        help="our PEM certificate (chain, leaf first); its SAN URI is our identity",
    )
    group.add_argument(
        "--tls-key", metavar="FILE.key", default=None, help="PEM private key of --tls-cert"
    )
    group.add_argument(
        "--tls-ca",
        metavar="CA.crt",
        default=None,
        help=f"PEM CA certificate(s); {peer} a certificate issued by it",
    )
