"""Generated code (tracklayer/v1) is fresh against proto/ and carries the fixed contract."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pb2 import ServiceDescriptorProto

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
GENERATED_DIR = ROOT / "tracklayer" / "v1"
BIN_DIR = Path(sys.executable).parent  # protoc-gen-mypy lives beside the interpreter
HAVE_MYPY_PLUGIN = shutil.which("protoc-gen-mypy", path=str(BIN_DIR)) is not None


def _generated_files(directory: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.name.endswith(suffixes) and "_pb2" in p.name
    }


def test_generated_code_matches_the_proto_files(tmp_path):
    """Fails when a .proto is edited without `make proto` (same command as the Makefile)."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("tracklayer/v1/*.proto"))
    assert protos, f"no .proto files under {PROTO_DIR}"
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        ".",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
    ]
    suffixes: tuple[str, ...] = (".py",)
    if HAVE_MYPY_PLUGIN:
        args.append(f"--mypy_out={tmp_path}")
        suffixes = (".py", ".pyi")
    env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        args + protos, cwd=PROTO_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"protoc failed:\n{run.stderr}"

    fresh = _generated_files(tmp_path / "tracklayer" / "v1", suffixes)
    committed = _generated_files(GENERATED_DIR, suffixes)
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, (
        f"tracklayer/v1 is stale against proto/ ({', '.join(stale)}): run `make proto`"
    )


def _generated_modules() -> list[str]:
    import tracklayer.v1

    return sorted(
        f"tracklayer.v1.{m.name}"
        for m in pkgutil.iter_modules(tracklayer.v1.__path__)
        if "_pb2" in m.name
    )


@pytest.mark.parametrize("module", _generated_modules())
def test_every_generated_module_imports(module):
    importlib.import_module(module)


# (client streaming, server streaming) per RPC, DESIGN §4 (fixed names).
FIXED_SERVICES = {
    "tracklayer.v1.FusionService": {
        "StreamFrames": (True, True),
        "ListLiveTracks": (False, False),
        "SubscribeLiveTracks": (False, True),
        "GetStatus": (False, False),
    },
    "tracklayer.v1.TrackStoreService": {
        "PublishTracks": (True, True),
        "ListTracks": (False, False),
        "GetTrackHistory": (False, False),
        "SubscribeTracks": (False, True),
    },
}


@pytest.mark.parametrize("service", sorted(FIXED_SERVICES))
def test_fixed_services_and_rpcs_exist_with_their_streaming_kinds(service):
    for module in _generated_modules():
        importlib.import_module(module)
    proto = ServiceDescriptorProto()
    descriptor_pool.Default().FindServiceByName(service).CopyToProto(proto)
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in proto.method}
    for rpc, kinds in FIXED_SERVICES[service].items():
        assert rpc in methods, f"{service} lacks the fixed RPC {rpc}"
        assert methods[rpc] == kinds, f"{service}.{rpc}: streaming kinds changed"


@pytest.mark.parametrize(
    ("module", "service"),
    [
        ("tracklayer.v1.fusion_service_pb2_grpc", "FusionService"),
        ("tracklayer.v1.track_store_service_pb2_grpc", "TrackStoreService"),
    ],
)
def test_grpc_modules_provide_stub_servicer_and_registration(module, service):
    mod = importlib.import_module(module)
    for name in (f"{service}Stub", f"{service}Servicer", f"add_{service}Servicer_to_server"):
        assert hasattr(mod, name), f"{module} lacks {name}"


# Fixed message fields (name -> number), DESIGN §4.
FIXED_FIELDS = {
    "Vector3": {"x": 1, "y": 2, "z": 3},
    "SensorFrame": {
        "sensor_id": 1,
        "sequence": 2,
        "time": 3,
        "sensor_position_eci": 4,
        "sensor_velocity_eci": 5,
        "detections": 6,
    },
    "Detection": {"line_of_sight_eci": 1, "angular_sigma": 2, "intensity": 3},
    "FrameAck": {"sensor_id": 1, "sequence": 2, "status": 3, "reason": 4},
    "TrackReport": {
        "track_id": 1,
        "revision": 2,
        "status": 3,
        "time": 4,
        "position_eci": 5,
        "velocity_eci": 6,
        "covariance": 7,
        "latitude_deg": 8,
        "longitude_deg": 9,
        "altitude_m": 10,
        "phase": 11,
        "impact": 12,
        "launch": 13,
        "sensor_ids": 14,
        "update_count": 15,
        "emitted_at": 16,
    },
    "ImpactPrediction": {
        "latitude_deg": 1,
        "longitude_deg": 2,
        "time": 3,
        "semi_major_m": 4,
        "semi_minor_m": 5,
        "orientation_deg": 6,
    },
    "LaunchEstimate": {
        "latitude_deg": 1,
        "longitude_deg": 2,
        "time": 3,
        "semi_major_m": 4,
        "semi_minor_m": 5,
        "orientation_deg": 6,
    },
    "PublishAck": {"track_id": 1, "revision": 2, "status": 3, "reason": 4},
    "TruthFrame": {"time": 1, "objects": 2},
    "TruthState": {"object_id": 1, "position_eci": 2, "velocity_eci": 3, "phase": 4},
    "DetectionTruth": {"sensor_id": 1, "sequence": 2, "object_ids": 3},
    "StreamFramesRequest": {"frames": 1},
    "StreamFramesResponse": {"acks": 1},
    "PublishTracksRequest": {"reports": 1},
    "PublishTracksResponse": {"acks": 1},
    "ListLiveTracksResponse": {"tracks": 1},
    "SubscribeLiveTracksRequest": {"include_current": 1},
    "SubscribeLiveTracksResponse": {"reports": 1},
    "ListTracksRequest": {"include_deleted": 1},
    "ListTracksResponse": {"tracks": 1},
    "GetTrackHistoryRequest": {"track_id": 1},
    "GetTrackHistoryResponse": {"reports": 1},
    "SubscribeTracksRequest": {"include_current": 1},
    "SubscribeTracksResponse": {"reports": 1},
    "GetStatusResponse": {"counters": 1},
}


@pytest.mark.parametrize("message", sorted(FIXED_FIELDS))
def test_fixed_message_fields_keep_their_names_and_numbers(message):
    for module in _generated_modules():
        importlib.import_module(module)
    desc = descriptor_pool.Default().FindMessageTypeByName(f"tracklayer.v1.{message}")
    fields = {f.name: f.number for f in desc.fields}
    for name, number in FIXED_FIELDS[message].items():
        assert fields.get(name) == number, f"{message}.{name} should be field {number}"
