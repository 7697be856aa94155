"""Scenario files (TOML, key names fixed by DESIGN §3): parsing and strict validation.

:func:`parse_scenario` turns TOML text into a :class:`Scenario` (no file access);
:func:`load_scenario` is the one small function that reads a built-in or a file (and the
TLE file a ``kind = "tle"`` constellation names, relative to the scenario file).
Every problem raises :class:`ScenarioError`, whose text is one line naming the file, the
key and what is allowed. Values keep the file's human units (degrees, km, microradians).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .constellation import ConstellationError, parse_tle
from .missile_profiles import GLIDERS, MISSILES, MissileError, check_reach

_UNIX = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ScenarioError(ValueError):
    """A bad scenario; ``str(e)`` is one line: ``FILE: KEY: what is wrong / allowed``."""

    def __init__(self, file: str, key: str | None, message: str) -> None:
        self.file, self.key, self.message = file, key, message
        text = f"{file}: {key}: {message}" if key else f"{file}: {message}"
        super().__init__(" ".join(text.split()))


@dataclass(frozen=True, slots=True)
class ConstellationSpec:
    """The ``[constellation]`` table: a Walker-delta layer (km, degrees) or a TLE file."""

    kind: str = "walker"
    altitude_km: float = 1000.0
    inclination_deg: float = 80.0
    planes: int = 4
    satellites_per_plane: int = 7
    phasing: int = 1
    tle_file: str = ""
    tle_text: str = ""  # the TLE file's content, filled in by load_scenario


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """The ``[sensor]`` table: frame rate (Hz), noise and resolution (urad), detection
    probabilities, clutter, occlusion (km), delivery latency (s), drops and bias."""

    frame_rate_hz: float = 1.0
    frame_phase: str = "random"
    angular_sigma_urad: float = 20.0
    resolution_urad: float = 0.0
    pd_boost: float = 0.98
    pd_midcourse: float = 0.85
    pd_glide: float = 0.9
    clutter_per_frame: float = 2.0
    hotspot_count: int = 0
    grazing_height_km: float = 50.0
    max_range_km: float = 6000.0
    latency_mean_s: float = 0.2
    latency_max_s: float = 5.0
    drop_probability: float = 0.0
    bias_sigma_urad: float = 0.0
    bias_drift_urad_per_hour: float = 0.0  # random walk: sigma per axis after one hour


@dataclass(frozen=True, slots=True)
class TurnSpec:
    """One entry of a launch's ``turns`` (glide vehicles only): bank ``bank_deg`` (positive
    turns right seen from above) from ``at_s`` s after that missile's launch for
    ``duration_s`` s."""

    at_s: float
    bank_deg: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """One ``[[launch]]`` table: ``count`` missiles of one profile from ``site`` to
    ``target`` (degrees), the first at ``time_s`` after the epoch, ``spacing_s`` apart."""

    id: str
    missile: str
    site_lat_deg: float
    site_lon_deg: float
    target_lat_deg: float
    target_lon_deg: float
    time_s: float = 0.0
    count: int = 1
    spacing_s: float = 0.0
    turns: tuple[TurnSpec, ...] = ()

    def object_ids(self) -> list[str]:
        return [f"{self.id}-{i + 1:02d}" for i in range(self.count)]


@dataclass(frozen=True, slots=True)
class OutageSpec:
    """One ``[[outage]]`` table: ``sensor_id`` sends nothing from ``start_s`` for
    ``duration_s`` (s after the epoch)."""

    sensor_id: str
    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. ``epoch_ns``: Unix ns (UTC); other times in s after it."""

    name: str
    description: str
    epoch_ns: int
    duration_s: float
    seed: int
    constellation: ConstellationSpec
    sensor: SensorSpec
    launches: tuple[LaunchSpec, ...]
    outages: tuple[OutageSpec, ...] = ()
    source: str = ""  # file the scenario came from (or "builtin:NAME")
    _sensor_ids: tuple[str, ...] = field(default=(), repr=False)

    @property
    def epoch_s(self) -> float:
        return self.epoch_ns / 1e9

    def sensor_ids(self) -> list[str]:
        """Every satellite id, sorted."""
        return sorted(self._sensor_ids)


# --------------------------------------------------------------------------- validation

_TOP = {"name", "description", "epoch", "duration_s", "seed", "constellation", "sensor",
        "launch", "outage"}  # fmt: skip
_CONSTELLATION = {f for f in ConstellationSpec.__slots__ if f != "tle_text"}
_SENSOR = set(SensorSpec.__slots__)
_LAUNCH = {"id", "missile", "site", "target", "time_s", "count", "spacing_s", "turns"}
_TURN = {"at_s", "bank_deg", "duration_s"}
MAX_BANK_DEG = 70.0
_POINT = {"lat_deg", "lon_deg"}
_OUTAGE = {"sensor_id", "start_s", "duration_s"}


class _Checker:
    """Typed access to one TOML table, with errors naming file and dotted key."""

    def __init__(self, file: str, table: Any, path: str, allowed: set[str]) -> None:
        self.file, self.path = file, path
        if not isinstance(table, dict):
            raise ScenarioError(file, path or "(top level)", "must be a table")
        self.t = table
        for k in table:
            if k not in allowed:
                raise ScenarioError(
                    file, self.key(k), f"unknown key; allowed here: {', '.join(sorted(allowed))}"
                )

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def err(self, k: str, msg: str) -> ScenarioError:
        return ScenarioError(self.file, self.key(k), msg)

    def get(self, k: str, kind: type, default: Any = None, required: bool = False) -> Any:
        if k not in self.t:
            if required:
                raise self.err(k, "missing required key")
            return default
        v = self.t[k]
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.err(k, f"must be a number, got {v!r}")
            return float(v)
        if kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.err(k, f"must be an integer, got {v!r}")
            return v
        if kind is str:
            if not isinstance(v, str):
                raise self.err(k, f"must be a string, got {v!r}")
            return v
        raise TypeError(kind)

    def num(self, k, default=None, lo=None, hi=None, lo_open=False, required=False, kind=float):
        v = self.get(k, kind, default, required)
        if v is None:
            return v
        below = lo is not None and (v <= lo if lo_open else v < lo)
        above = hi is not None and v > hi
        if below or above:
            lo_txt = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
            hi_txt = "" if hi is None else f"<= {hi:g}"
            rng = " and ".join(x for x in (lo_txt, hi_txt) if x)
            raise self.err(k, f"must be {rng}, got {v!r}")
        return v

    def choice(self, k, options: tuple[str, ...], default=None, required=False) -> str:
        v = self.get(k, str, default, required)
        if v not in options:
            raise self.err(k, f"must be one of {', '.join(map(repr, options))}, got {v!r}")
        return v


def _epoch_ns(c: _Checker) -> int:
    v = c.t.get("epoch")
    if v is None:
        raise c.err("epoch", "missing required key")
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise c.err("epoch", f"must be an ISO 8601 UTC time like "
                        f"'2026-01-01T00:00:00Z', got {v!r}") from None  # fmt: skip
    if not isinstance(v, dt.datetime) or v.tzinfo is None:
        raise c.err("epoch", f"must be a UTC date-time like '2026-01-01T00:00:00Z', got {v!r}")
    return ((v - _UNIX) // dt.timedelta(microseconds=1)) * 1000


def _constellation(file: str, table: Any) -> ConstellationSpec:
    c = _Checker(file, table, "constellation", _CONSTELLATION)
    d = ConstellationSpec()
    kind = c.choice("kind", ("walker", "tle"), d.kind)
    planes = c.num("planes", d.planes, lo=1, hi=100, kind=int)
    spec = ConstellationSpec(
        kind=kind,
        altitude_km=c.num("altitude_km", d.altitude_km, lo=200.0, hi=40_000.0),
        inclination_deg=c.num("inclination_deg", d.inclination_deg, lo=0.0, hi=180.0),
        planes=planes,
        satellites_per_plane=c.num(
            "satellites_per_plane", d.satellites_per_plane, lo=1, hi=100, kind=int
        ),  # fmt: skip
        phasing=c.num("phasing", d.phasing, lo=0, hi=planes - 1, kind=int),
        tle_file=c.get("tle_file", str, ""),
    )
    if kind == "tle" and not spec.tle_file:
        raise c.err(
            "tle_file", 'missing: kind = "tle" needs tle_file = "path/relative/to/scenario"'
        )
    if kind == "walker" and spec.tle_file:
        raise c.err("tle_file", 'only allowed with kind = "tle"')
    return spec


def _sensor(file: str, table: Any) -> SensorSpec:
    c = _Checker(file, table, "sensor", _SENSOR)
    d = SensorSpec()
    return SensorSpec(
        frame_rate_hz=c.num("frame_rate_hz", d.frame_rate_hz, lo=0.0, hi=100.0, lo_open=True),
        frame_phase=c.choice("frame_phase", ("random", "aligned"), d.frame_phase),
        # the wire accepts sigma in (0, 1e-2] rad
        angular_sigma_urad=c.num(
            "angular_sigma_urad", d.angular_sigma_urad, lo=0.0, hi=1e4, lo_open=True
        ),  # fmt: skip
        resolution_urad=c.num("resolution_urad", d.resolution_urad, lo=0.0, hi=1e5),
        pd_boost=c.num("pd_boost", d.pd_boost, lo=0.0, hi=1.0),
        pd_midcourse=c.num("pd_midcourse", d.pd_midcourse, lo=0.0, hi=1.0),
        pd_glide=c.num("pd_glide", d.pd_glide, lo=0.0, hi=1.0),
        clutter_per_frame=c.num("clutter_per_frame", d.clutter_per_frame, lo=0.0, hi=1000.0),
        hotspot_count=c.num("hotspot_count", d.hotspot_count, lo=0, hi=10_000, kind=int),
        grazing_height_km=c.num("grazing_height_km", d.grazing_height_km, lo=0.0, hi=1000.0),
        max_range_km=c.num("max_range_km", d.max_range_km, lo=0.0, hi=100_000.0, lo_open=True),
        latency_mean_s=c.num("latency_mean_s", d.latency_mean_s, lo=0.0, hi=600.0),
        latency_max_s=c.num("latency_max_s", d.latency_max_s, lo=0.0, hi=600.0),
        drop_probability=c.num("drop_probability", d.drop_probability, lo=0.0, hi=1.0),
        bias_sigma_urad=c.num("bias_sigma_urad", d.bias_sigma_urad, lo=0.0, hi=1e4),
        bias_drift_urad_per_hour=c.num(
            "bias_drift_urad_per_hour", d.bias_drift_urad_per_hour, lo=0.0, hi=1e4
        ),
    )


def _point(file: str, table: Any, path: str) -> tuple[float, float]:
    c = _Checker(file, table, path, _POINT)
    return (
        c.num("lat_deg", lo=-90.0, hi=90.0, required=True),
        c.num("lon_deg", lo=-180.0, hi=360.0, required=True),
    )


def _launch(file: str, table: Any, i: int, duration_s: float) -> LaunchSpec:
    path = f"launch[{i}]"
    c = _Checker(file, table, path, _LAUNCH)
    lid = c.get("id", str, required=True)
    if not lid or not all(ch.isalnum() or ch in "_." for ch in lid):
        raise c.err("id", f"must be a non-empty name of letters, digits, '_' or '.', got {lid!r}")
    missile = c.choice("missile", MISSILES, required=True)
    if "site" not in c.t:
        raise c.err("site", "missing required key (site = { lat_deg = .., lon_deg = .. })")
    if "target" not in c.t:
        raise c.err("target", "missing required key (target = { lat_deg = .., lon_deg = .. })")
    site = _point(file, c.t["site"], f"{path}.site")
    target = _point(file, c.t["target"], f"{path}.target")
    count = c.num("count", 1, lo=1, hi=1000, kind=int)
    spacing = c.num("spacing_s", 0.0, lo=0.0, hi=86_400.0)
    if count > 1 and spacing <= 0.0:
        raise c.err("spacing_s", f"must be > 0 when count > 1 (count = {count})")
    time_s = c.num("time_s", 0.0, lo=0.0, hi=duration_s)
    try:
        check_reach(missile, site, target)
    except MissileError as exc:
        raise c.err("target", str(exc)) from None
    turns = _turns(file, c, missile)
    return LaunchSpec(lid, missile, site[0], site[1], target[0], target[1], time_s, count,
                      spacing, turns)  # fmt: skip


def _turns(file: str, c: _Checker, missile: str) -> tuple[TurnSpec, ...]:
    """A launch's ``turns``: glide vehicles only, each entry complete and in range, in
    time order without overlap."""
    raw = c.t.get("turns")
    if raw is None:
        return ()
    if missile not in GLIDERS:
        raise c.err("turns", f"only allowed for a glide vehicle (missile = "
                    f"{' | '.join(map(repr, GLIDERS))}), not {missile!r}")  # fmt: skip
    if not isinstance(raw, list):
        raise c.err("turns", "must be an array of tables like "
                    "[{ at_s = 420.0, bank_deg = 45.0, duration_s = 60.0 }]")  # fmt: skip
    out: list[TurnSpec] = []
    for k, table in enumerate(raw):
        t = _Checker(file, table, c.key(f"turns[{k}]"), _TURN)
        turn = TurnSpec(
            t.num("at_s", lo=0.0, hi=86_400.0, required=True),
            t.num("bank_deg", lo=-MAX_BANK_DEG, hi=MAX_BANK_DEG, required=True),
            t.num("duration_s", lo=0.0, hi=3600.0, lo_open=True, required=True),
        )
        if out and turn.at_s < out[-1].at_s + out[-1].duration_s:
            end = out[-1].at_s + out[-1].duration_s
            raise t.err("at_s", f"must be >= {end:g}, the end of turns[{k - 1}] (turns in "
                        f"time order, not overlapping), got {turn.at_s:g}")  # fmt: skip
        out.append(turn)
    return tuple(out)


def _outage(file: str, table: Any, i: int, sensor_ids: set[str]) -> OutageSpec:
    c = _Checker(file, table, f"outage[{i}]", _OUTAGE)
    sid = c.get("sensor_id", str, required=True)
    if sid not in sensor_ids:
        some = ", ".join(sorted(sensor_ids)[:4])
        raise c.err("sensor_id", f"unknown satellite {sid!r}; ids look like {some}, ...")
    return OutageSpec(
        sid,
        c.num("start_s", lo=0.0, required=True),
        c.num("duration_s", lo=0.0, lo_open=True, required=True),
    )


def walker_ids(planes: int, per_plane: int) -> list[str]:
    return [f"sat-{p + 1}-{s + 1}" for p in range(planes) for s in range(per_plane)]


def parse_scenario(text: str, source: str, tle_text: str | None = None) -> Scenario:
    """Validate scenario TOML ``text``; ``source`` names it in errors. A TLE constellation
    needs ``tle_text`` (the content of its ``tle_file``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, None, f"not valid TOML: {exc}") from None
    c = _Checker(source, doc, "", _TOP)
    name = c.get("name", str, required=True)
    description = c.get("description", str, "")
    epoch_ns = _epoch_ns(c)
    duration_s = c.num("duration_s", lo=0.0, hi=86_400.0, lo_open=True, required=True)
    seed = c.num("seed", 1, lo=0, hi=2**63 - 1, kind=int)
    for k in ("constellation", "sensor"):
        if k not in doc:
            raise c.err(k, f"missing required table [{k}]")
    constellation = _constellation(source, doc["constellation"])
    sensor = _sensor(source, doc["sensor"])
    launches_raw = doc.get("launch")
    if not launches_raw:
        raise c.err("launch", "at least one [[launch]] table is required")
    if not isinstance(launches_raw, list):
        raise c.err("launch", "must be an array of tables ([[launch]])")
    launches = tuple(_launch(source, t, i, duration_s) for i, t in enumerate(launches_raw))
    seen: set[str] = set()
    for i, la in enumerate(launches):
        if la.id in seen:
            raise ScenarioError(source, f"launch[{i}].id", f"duplicate launch id {la.id!r}")
        seen.add(la.id)
    if constellation.kind == "tle":
        if tle_text is None:
            raise c.err("constellation.tle_file", "TLE text not provided")
        try:
            ids = parse_tle(tle_text, constellation.tle_file).ids
        except ConstellationError as exc:
            raise ScenarioError(source, "constellation.tle_file", str(exc)) from None
        constellation = ConstellationSpec(**{**_asdict(constellation), "tle_text": tle_text})
    else:
        ids = tuple(walker_ids(constellation.planes, constellation.satellites_per_plane))
    outages_raw = doc.get("outage", [])
    if not isinstance(outages_raw, list):
        raise c.err("outage", "must be an array of tables ([[outage]])")
    outages = tuple(_outage(source, t, i, set(ids)) for i, t in enumerate(outages_raw))
    return Scenario(name, description, epoch_ns, duration_s, seed, constellation, sensor,
                    launches, outages, source, tuple(ids))  # fmt: skip


def _asdict(spec) -> dict[str, Any]:
    return {k: getattr(spec, k) for k in spec.__slots__}


# --------------------------------------------------------------------------- loading


def _builtin_dir():
    return resources.files("tracklayer.sensors").joinpath("scenarios")


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path (the only file reading here)."""
    if name_or_path in builtin_names():
        res = _builtin_dir().joinpath(f"{name_or_path}.toml")
        text, source, base = res.read_text(encoding="utf-8"), name_or_path, None
    else:
        path = Path(name_or_path)
        if path.is_dir():
            raise ScenarioError(name_or_path, None, "is a directory, not a scenario file")
        if not path.is_file():
            raise ScenarioError(
                name_or_path, None,
                f"no such file or built-in scenario (built-ins: {', '.join(builtin_names())})",
            )  # fmt: skip
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(name_or_path, None, f"cannot read: {exc}") from None
        source, base = str(path), path.parent
    tle_text = None
    if "tle_file" in text:  # only then is there a file to read
        try:
            tle_name = tomllib.loads(text).get("constellation", {}).get("tle_file")
        except (tomllib.TOMLDecodeError, AttributeError):
            tle_name = None  # parse_scenario reports it
        if isinstance(tle_name, str) and tle_name:
            tle_res = _builtin_dir().joinpath(tle_name) if base is None else base / tle_name
            try:
                tle_text = tle_res.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ScenarioError(source, "constellation.tle_file",
                                    f"cannot read {tle_name!r}: {exc}") from None  # fmt: skip
    return parse_scenario(text, source, tle_text)


def list_scenarios() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in scenario."""
    return [(n, load_scenario(n).description) for n in builtin_names()]
