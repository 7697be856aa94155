"""``tracklayer certs``: a development CA and the certificates for mutual TLS."""

from __future__ import annotations

import argparse

from tracklayer.services.errors import UserError
from tracklayer.services.ops.dev_certs import (
    DEFAULT_DAYS,
    DEFAULT_FUSION_ID,
    DEFAULT_HOSTS,
    split_ids,
    write_dev_certs,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certs",
        help="create a development CA and mTLS certificates",
        description=(
            "Write into DIR a development certificate authority and PEM certificates "
            "(EC P-256, valid --days) for mutual TLS: ca.crt/ca.key; store.crt/store.key "
            "(server; SAN localhost, 127.0.0.1); fusion-<id>.crt/.key (server and client; "
            "SAN localhost, 127.0.0.1, urn:tracklayer:fusion:<id>); sensor-<id>.crt/.key "
            "(client; SAN urn:tracklayer:sensor:<id>); with --node NAME also node-NAME.crt/.key "
            "(client; one SAN URI per sensor). Private keys are written with mode "
            "0600. An existing CA in DIR is kept unless --force or --reuse-ca."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="directory to write into (created if absent)")
    p.add_argument(
        "--sensors",
        metavar="ID,...",
        help="sensor ids, comma-separated (e.g. sat-1-1,sat-1-2): one certificate each",
    )
    p.add_argument(
        "--scenario",
        metavar="SCENARIO",
        help="also every satellite of this scenario (built-in name or .toml file)",
    )
    p.add_argument(
        "--fusion",
        default=DEFAULT_FUSION_ID,
        metavar="ID[,ID...]",
        help="fusion service id(s), as its --id (default: %(default)s)",
    )
    p.add_argument(
        "--node",
        default=None,
        metavar="NAME",
        help=(
            "also write node-NAME.crt/.key: one client certificate naming every --sensors id, "
            "for one process streaming many satellites (tracklayer sensors / replay)"
        ),
    )
    p.add_argument(
        "--host",
        action="append",
        default=None,
        metavar="NAME|IP",
        help=(
            "extra DNS name or IP address for the store and fusion server certificates "
            f"(repeatable; always included: {', '.join(DEFAULT_HOSTS)})"
        ),
    )
    p.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help="validity in days (default: %(default)s)"
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument(
        "--force",
        action="store_true",
        help="replace an existing CA in DIR (certificates it issued stop working)",
    )
    existing.add_argument(
        "--reuse-ca",
        action="store_true",
        help="sign the new certificates with the CA already in DIR (ca.crt, ca.key)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sensors = split_ids(args.sensors, "sensor")
    if args.scenario:
        from tracklayer.sensors.scenario import ScenarioError, load_scenario

        try:
            scenario_ids = load_scenario(args.scenario).sensor_ids()
        except ScenarioError as exc:
            raise UserError(f"--scenario: {exc}") from None
        sensors += [s for s in scenario_ids if s not in sensors]
    if not sensors:
        raise UserError("--sensors: give the sensor ids (or --scenario NAME)")
    fusion_ids = split_ids(args.fusion, "fusion") or [DEFAULT_FUSION_ID]
    hosts = [*DEFAULT_HOSTS, *(h.strip() for h in (args.host or []) if h.strip())]
    written = write_dev_certs(
        args.dir,
        sensors,
        fusion_ids,
        force=args.force,
        reuse_ca=args.reuse_ca,
        hosts=hosts,
        days=args.days,
        node=args.node,
    )
    width = max(len(str(w.path)) for w in written)
    for w in written:
        print(f"wrote {str(w.path):<{width}}  {w.description}")
    print(
        f"tracklayer certs: {len(written)} files in {args.dir} "
        f"({len(sensors)} sensors, fusion {', '.join(fusion_ids)}; valid {args.days} days)"
    )
    return 0
