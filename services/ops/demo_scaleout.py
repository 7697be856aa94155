"""``tracklayer demo --workers W [--shards S]``: the scale-out chain in the demo.

The demo then starts ``tracklayer broker`` (its store in ``DIR/broker``, emptied first
like the journal of an embedded run), the front door (``fusion --nats``) and W
``tracklayer worker`` processes, and waits at the end until every shard has applied
the whole journal and the front door forwarded every report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tracklayer.services.ops.processes import ChildProcess, wait_listening

#: The broker's store folder inside the demo's output directory.
BROKER_DIR = "broker"


def start_broker_and_workers(
    spawn: Callable[..., ChildProcess], out: Path, logs: Path, workers: int, shards: int = 1
) -> tuple[str, Callable[[], list[ChildProcess]]]:
    """Start the broker; returns its URL and a function starting the W workers, each
    hosting at most ceil(S / W) shards (call it once the front door is up: a worker waits
    for the front door's settings anyway)."""
    broker = spawn("broker", ["broker", "--listen", "127.0.0.1:0", "--store",
                              str(out / BROKER_DIR)], logs)  # fmt: skip
    url = f"nats://{wait_listening(broker)}"

    def start_workers() -> list[ChildProcess]:
        return [
            spawn(
                f"worker-{i}",
                [
                    "worker",
                    "--nats",
                    url,
                    "--id",
                    f"worker-{i}",
                    "--max-shards",
                    str(-(-shards // workers)),
                ],
                logs,
            )  # fmt: skip
            for i in range(1, workers + 1)
        ]

    return url, start_workers


def front_door_args(url: str, shards: int) -> list[str]:
    """The ``fusion`` flags of the front door (instead of --journal / --outbox)."""
    return ["--nats", url, "--shards", str(shards)]


def drained(counters: dict[str, int], shards: int) -> bool:
    """Every shard applied the whole journal and nothing waits to be forwarded."""
    lags = [counters.get(f'shard_lag_events{{shard="{k}"}}') for k in range(shards)]
    return (
        all(lag == 0 for lag in lags)
        and counters.get("outbox_depth", 1) == 0
        and counters.get("frames_pending", 0) == 0
        and counters.get("frames_untracked", 0) == 0
    )
