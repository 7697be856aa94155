"""Mutual TLS: the development CA (`tracklayer certs`), TLS file checks, identities over gRPC."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from tracklayer.services.cli import main as cli_main
from tracklayer.services.ops.dev_certs import make_ca, make_leaf, write_dev_certs
from tracklayer.services.rpc import tls
from tracklayer.services.rpc.tls import TlsConfig, TlsError

SENSORS = ("sat-1-1", "sat-2-3", "ISS (ZARYA)")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One development CA and its certificates, made by the CLI command."""
    d = tmp_path_factory.mktemp("certs")
    assert cli_main(["certs", str(d), "--sensors", ",".join(SENSORS), "--fusion", "fz"]) == 0
    return d


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA with the same file names (a forger's)."""
    d = tmp_path_factory.mktemp("other")
    write_dev_certs(d, ["sat-1-1"], ["fz"])
    return d


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def eku(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# ---------------------------------------------------------------- tracklayer certs


def test_certs_writes_the_fixed_file_names(certs):
    names = {p.name for p in certs.iterdir()}
    expected = {"ca.crt", "ca.key", "store.crt", "store.key", "fusion-fz.crt", "fusion-fz.key"}
    expected |= {f"sensor-{s}.{ext}" for s in SENSORS for ext in ("crt", "key")}
    assert names == expected


def test_ca_is_a_leaf_only_certificate_authority(certs):
    ca = load(certs / "ca.crt")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)  # self-signed


def test_every_leaf_is_issued_by_the_ca_and_is_not_a_ca(certs):
    ca = load(certs / "ca.crt")
    for crt in certs.glob("*.crt"):
        if crt.name == "ca.crt":
            continue
        cert = load(crt)
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign


def test_store_certificate_serves_localhost_only(certs):
    cert = load(certs / "store.crt")
    names = san(cert)
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == []
    assert eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_fusion_certificate_is_server_and_client_with_fusion_uri(certs):
    cert = load(certs / "fusion-fz.crt")
    names = san(cert)
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:tracklayer:fusion:fz"]
    assert eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_sensor_certificate_is_client_only_with_sensor_uri(certs):
    cert = load(certs / "sensor-sat-2-3.crt")
    names = san(cert)
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:tracklayer:sensor:sat-2-3"
    ]
    assert names.get_values_for_type(x509.DNSName) == []
    assert eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_node_certificate_names_every_sensor_as_a_client(tmp_path):
    assert cli_main(["certs", str(tmp_path), "--sensors", "s1,s2,s3", "--node", "n1"]) == 0
    cert = load(tmp_path / "node-n1.crt")
    uris = san(cert).get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [f"urn:tracklayer:sensor:s{i}" for i in (1, 2, 3)]
    assert eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    config = TlsConfig.from_dir(tmp_path, "node-n1")
    config.require_identities("sensor", ["s1", "s3"])
    with pytest.raises(TlsError, match=r"names s1, s2, s3, not sensor s4 \(SAN URI urn:tracklayer"):
        config.require_identities("sensor", ["s1", "s4"])


def test_certs_takes_the_sensor_ids_of_a_scenario(tmp_path):
    from tracklayer.sensors.scenario import load_scenario

    assert cli_main(["certs", str(tmp_path), "--scenario", "single-icbm", "--node", "all"]) == 0
    sats = load_scenario("single-icbm").sensor_ids()
    assert all((tmp_path / f"sensor-{s}.crt").exists() for s in sats)
    TlsConfig.from_dir(tmp_path, "node-all").require_identities("sensor", sats)


def test_certs_without_sensors_is_an_error(tmp_path, capsys):
    assert cli_main(["certs", str(tmp_path / "d")]) == 2
    assert "--sensors" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_sensor_ids_outside_uri_characters_are_percent_encoded(certs):
    uris = tls.certificate_uris(load(certs / "sensor-ISS (ZARYA).crt"))
    assert uris == ["urn:tracklayer:sensor:ISS%20%28ZARYA%29"]
    assert tls.parse_identity_uri(uris[0]) == ("sensor", "ISS (ZARYA)")


def test_keys_are_p256_and_readable_by_owner_only(certs):
    for key_file in certs.glob("*.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"


def test_certificates_are_valid_for_a_year_from_now(certs):
    now = dt.datetime.now(dt.UTC)
    for crt in certs.glob("*.crt"):
        cert = load(crt)
        # Not-before is backdated a few minutes for peers whose clocks run behind;
        # the test itself ran within a minute of the files being made.
        assert now - dt.timedelta(minutes=10) < cert.not_valid_before_utc < now
        lifetime = cert.not_valid_after_utc - now
        assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365), crt


def test_certs_refuses_to_replace_an_existing_ca(tmp_path, capsys):
    write_dev_certs(tmp_path, ["s1"])
    before = (tmp_path / "ca.crt").read_bytes()
    assert cli_main(["certs", str(tmp_path), "--sensors", "s2"]) == 2
    err = capsys.readouterr().err
    assert "ca.crt" in err and "--force" in err
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert not (tmp_path / "sensor-s2.crt").exists()


def test_certs_force_replaces_the_ca(tmp_path):
    write_dev_certs(tmp_path, ["s1"])
    before = (tmp_path / "ca.crt").read_bytes()
    assert cli_main(["certs", str(tmp_path), "--sensors", "s2", "--force"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() != before


def test_certs_reuse_ca_signs_new_sensors_with_the_existing_ca(tmp_path):
    write_dev_certs(tmp_path, ["s1"])
    before = (tmp_path / "ca.crt").read_bytes()
    assert cli_main(["certs", str(tmp_path), "--sensors", "s9", "--reuse-ca"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() == before
    load(tmp_path / "sensor-s9.crt").verify_directly_issued_by(load(tmp_path / "ca.crt"))


def test_certs_extra_host_goes_into_server_certificates(tmp_path):
    args = ["certs", str(tmp_path), "--sensors", "s1", "--host", "fusion.example", "--host", "::1"]
    assert cli_main(args) == 0
    for name in ("store.crt", "fusion-fusion.crt"):
        names = san(load(tmp_path / name))
        assert names.get_values_for_type(x509.DNSName) == ["localhost", "fusion.example"]
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", ""])
def test_certs_rejects_ids_that_are_not_file_names(tmp_path, capsys, bad):
    assert cli_main(["certs", str(tmp_path), "--sensors", f"ok,{bad}"]) == 2
    assert "--sensors" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- flags and file checks


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tls.add_tls_arguments(parser)
    return parser.parse_args(argv)


def tls_argv(d: Path, name: str, ca: Path | None = None) -> list[str]:
    ca = ca or d / "ca.crt"
    return ["--tls-cert", str(d / f"{name}.crt"), "--tls-key", str(d / f"{name}.key"),
            "--tls-ca", str(ca)]  # fmt: skip


def test_no_tls_flags_mean_plaintext():
    assert TlsConfig.from_args(parse([])) is None
    assert tls.transport_description(None) == "plaintext: no TLS"


def test_tls_flags_must_come_together(certs):
    with pytest.raises(TlsError, match="--tls-key, --tls-ca: required together with --tls-cert"):
        TlsConfig.from_args(parse(["--tls-cert", str(certs / "store.crt")]))


def test_tls_flags_give_a_config_with_our_identity(certs):
    config = TlsConfig.from_args(parse(tls_argv(certs, "sensor-sat-1-1")))
    assert config == TlsConfig.from_dir(certs, "sensor-sat-1-1")
    assert config.material.uris == ["urn:tracklayer:sensor:sat-1-1"]
    assert "urn:tracklayer:sensor:sat-1-1" in tls.transport_description(config)


def test_missing_file_is_named(certs):
    argv = tls_argv(certs, "sensor-nobody")
    with pytest.raises(
        TlsError, match=r"--tls-cert: certificate file .*sensor-nobody.crt does not"
    ):
        TlsConfig.from_args(parse(argv))


def test_unreadable_directory_given_as_file_is_named(certs):
    with pytest.raises(TlsError, match=r"--tls-ca: CA certificate file .* is a directory"):
        tls.load_tls_material(certs / "store.crt", certs / "store.key", certs)


def test_empty_file_is_named(certs, tmp_path):
    empty = tmp_path / "empty.crt"
    empty.write_bytes(b"")
    with pytest.raises(TlsError, match=r"--tls-cert: certificate file .*empty.crt is empty"):
        tls.load_tls_material(empty, certs / "store.key", certs / "ca.crt")


def test_not_pem_file_is_named(certs, tmp_path):
    junk = tmp_path / "junk.crt"
    junk.write_bytes(b"\x30\x82 this is DER or garbage")
    with pytest.raises(TlsError, match=r"junk.crt is not a PEM certificate"):
        tls.load_tls_material(junk, certs / "store.key", certs / "ca.crt")


def test_key_given_as_certificate_says_so(certs):
    with pytest.raises(TlsError, match=r"store.key is not a PEM certificate \(it holds a private"):
        tls.load_tls_material(certs / "store.key", certs / "store.key", certs / "ca.crt")


def test_certificate_given_as_key_says_so(certs):
    with pytest.raises(TlsError, match=r"--tls-key: .*store.crt is not a PEM private key \(it"):
        tls.load_tls_material(certs / "store.crt", certs / "store.crt", certs / "ca.crt")


def test_corrupt_pem_body_is_named(certs, tmp_path):
    bad = tmp_path / "bad.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsError, match=r"bad.crt is not valid PEM"):
        tls.load_tls_material(bad, certs / "store.key", certs / "ca.crt")


def test_key_not_matching_certificate_is_named(certs):
    with pytest.raises(TlsError, match=r"fusion-fz.key does not match certificate .*store.crt"):
        tls.load_tls_material(certs / "store.crt", certs / "fusion-fz.key", certs / "ca.crt")


def test_encrypted_key_is_refused(certs, tmp_path):
    key = serialization.load_pem_private_key((certs / "store.key").read_bytes(), None)
    enc = tmp_path / "enc.key"
    enc.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match=r"enc.key is encrypted"):
        tls.load_tls_material(certs / "store.crt", enc, certs / "ca.crt")


def test_certificate_from_another_ca_is_refused_at_start_up(certs, other_ca):
    with pytest.raises(TlsError, match=r"store.crt was not issued by the CA in .*ca.crt"):
        tls.load_tls_material(other_ca / "store.crt", other_ca / "store.key", certs / "ca.crt")


def test_expired_certificate_is_refused(tmp_path):
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    ca, ca_key = make_ca(long_ago, days=30)
    cert, key = make_leaf(
        ca, ca_key, "old", [x509.DNSName("localhost")], server=True, client=False, now=long_ago
    )
    for name, obj in (("ca.crt", ca), ("old.crt", cert)):
        (tmp_path / name).write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(TlsError, match=r"old.crt expired on 2020-01-31"):
        tls.load_tls_material(tmp_path / "old.crt", tmp_path / "old.key", tmp_path / "ca.crt")


# ---------------------------------------------------------------- identities


class FakeContext:
    """A servicer context offering only an auth context (as gRPC's)."""

    def __init__(self, auth: dict[str, list[bytes]]):
        self._auth = auth

    def auth_context(self):
        return self._auth


def test_identity_is_read_from_the_certificate_when_grpc_gives_no_peer_uri(certs):
    pem = (certs / "sensor-sat-1-1.crt").read_bytes()
    ctx = FakeContext({"x509_pem_cert": [pem]})
    assert tls.sensor_identity(ctx) == "sat-1-1"
    assert tls.fusion_identity(ctx) is None


def test_dns_names_never_pass_for_identities():
    # gRPC mixes DNS names and URIs in x509_subject_alternative_name; only URIs count.
    ctx = FakeContext({"x509_subject_alternative_name": [b"urn:tracklayer:sensor:x"]})
    assert tls.sensor_identity(ctx) is None


def test_certificate_naming_two_sensors_has_no_single_sensor_identity():
    ctx = FakeContext({"peer_uri": [b"urn:tracklayer:sensor:a", b"urn:tracklayer:sensor:b"]})
    assert tls.sensor_identity(ctx) is None
    assert tls.peer_identities(ctx, "sensor") == {"a", "b"}


def test_plaintext_context_has_no_identity():
    ctx = FakeContext({})
    assert tls.sensor_identity(ctx) is None and not tls.is_secure(ctx)


# ---------------------------------------------------------------- mTLS over real gRPC

WHOAMI = "/tracklayer.test.Identity/WhoAmI"


async def _whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """Answers ``sensor=<id>;fusion=<id>;secure=<bool>`` as the server sees the caller."""
    s, f = tls.sensor_identity(context), tls.fusion_identity(context)
    return f"sensor={s};fusion={f};secure={tls.is_secure(context)}".encode()


class MtlsServer:
    """An in-process grpc.aio server: Health plus a WhoAmI method, over mutual TLS."""

    def __init__(self, config: TlsConfig):
        self.config = config

    async def __aenter__(self):
        self.server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "tracklayer.test.Identity",
            {"WhoAmI": grpc.unary_unary_rpc_method_handler(_whoami)},
        )
        self.server.add_generic_rpc_handlers((handler,))
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, self.server)
        port = self.server.add_secure_port("127.0.0.1:0", self.config.server_credentials())
        await self.server.start()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.address = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.server.stop(0)


async def call_whoami(address: str, channel: grpc.aio.Channel) -> str:
    async with channel:
        reply = await channel.unary_unary(WHOAMI)(b"", timeout=5)
        return reply.decode()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _as(certs: Path, client: TlsConfig | None, server_name: str = "store") -> str:
    async with MtlsServer(TlsConfig.from_dir(certs, server_name)) as srv:
        return await call_whoami(srv.address, tls.create_channel(srv.address, client))


async def _refused(certs: Path, channel_for) -> grpc.StatusCode:
    async with MtlsServer(TlsConfig.from_dir(certs, "store")) as srv:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call_whoami(srv.address, channel_for(srv.address))
        return err.value.code()


def test_sensor_client_is_seen_with_its_certificate_identity(certs):
    got = run(_as(certs, TlsConfig.from_dir(certs, "sensor-sat-2-3")))
    assert got == "sensor=sat-2-3;fusion=None;secure=True"


def test_fusion_client_is_seen_as_a_fusion_identity(certs):
    got = run(_as(certs, TlsConfig.from_dir(certs, "fusion-fz")))
    assert got == "sensor=None;fusion=fz;secure=True"


def test_fusion_certificate_also_serves_mtls(certs):
    # The fusion service listens for sensors with the same certificate it dials the store with.
    got = run(_as(certs, TlsConfig.from_dir(certs, "sensor-sat-1-1"), server_name="fusion-fz"))
    assert got == "sensor=sat-1-1;fusion=None;secure=True"


def test_health_check_works_over_mtls(certs):
    async def check():
        async with MtlsServer(TlsConfig.from_dir(certs, "store")) as srv:
            client = TlsConfig.from_dir(certs, "sensor-sat-1-1")
            async with tls.create_channel(srv.address, client) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                return (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status

    assert run(check()) == health_pb2.HealthCheckResponse.SERVING


def test_client_without_certificate_cannot_connect(certs):
    ca = (certs / "ca.crt").read_bytes()

    def no_cert(address):
        return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca))

    assert run(_refused(certs, no_cert)) == grpc.StatusCode.UNAVAILABLE


def test_client_with_certificate_from_another_ca_cannot_connect(certs, other_ca):
    forged = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.crt").read_bytes(),  # trusts the real server
        private_key=(other_ca / "sensor-sat-1-1.key").read_bytes(),
        certificate_chain=(other_ca / "sensor-sat-1-1.crt").read_bytes(),
    )
    code = run(_refused(certs, lambda address: grpc.aio.secure_channel(address, forged)))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_cannot_talk_to_an_mtls_server(certs):
    code = run(_refused(certs, lambda address: grpc.aio.insecure_channel(address)))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_client_refuses_a_server_from_another_ca(certs, other_ca):
    async def go():
        async with MtlsServer(TlsConfig.from_dir(other_ca, "store")) as srv:
            client = TlsConfig.from_dir(certs, "sensor-sat-1-1")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call_whoami(srv.address, tls.create_channel(srv.address, client))
            return err.value.code()

    assert run(go()) == grpc.StatusCode.UNAVAILABLE
