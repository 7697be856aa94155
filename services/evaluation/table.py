"""The text ``tracklayer evaluate`` prints: the metrics table, the per-object table and
the baseline comparison, all made from a metrics.json dict (units in its key names;
the text shows m, km from 10 km, s, Hz, m/s and percentages).
"""

from __future__ import annotations

import math
from typing import Any

from tracklayer.services.evaluation.baseline import Comparison


def _num(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v}{(' ' + unit) if unit else ''}"
    if unit == "m" and abs(v) >= 10_000:
        return f"{v / 1e3:.2f} km"
    if unit in ("m", "s") and abs(v) >= 1000:
        return f"{v:.0f} {unit}"
    if unit == "%":
        return f"{100 * v:.2g} %" if 0 < 100 * abs(v) < 1 else f"{100 * v:.1f} %"
    return f"{v:.{digits}g}{(' ' + unit) if unit else ''}"


def format_table(d: dict[str, Any]) -> str:
    """The human-readable metrics table of a metrics.json dict."""
    s = d["tracks"]
    rows: list[tuple[str, str]] = [
        ("tracks (confirmed)", f"{s['n_tracks']} ({s['n_confirmed']})"),
        ("reports", _num(s["n_reports"])),
        (
            "confirmed lifetime median / max",
            f"{_num(s['confirmed_lifetime_median_s'], 's', 4)}"
            f" / {_num(s['confirmed_lifetime_max_s'], 's', 4)}",
        ),
        ("update rate, median track", _num(s["update_rate_median_hz"], "Hz")),
        ("report interval, median", _num(s["report_interval_median_s"], "s")),
        ("sensors per update, mean", _num(s["sensors_per_update_mean"])),
    ]
    t = d.get("truth")
    if t:
        pr, vr = t["position_rmse_m"], t["velocity_rmse_mps"]
        rows += [
            ("objects", _num(t["n_objects"])),
            ("GOSPA mean / max", f"{_num(t['gospa_mean_m'], 'm')} / {_num(t['gospa_max_m'], 'm')}"),
            ("position RMSE boost", _num(pr["boost"], "m")),
            ("position RMSE midcourse", _num(pr["midcourse"], "m")),
            ("position RMSE reentry", _num(pr["reentry"], "m")),
            (
                "velocity RMSE boost / midcourse / reentry",
                " / ".join(_num(vr[p], "m/s") for p in ("boost", "midcourse", "reentry")),
            ),
            ("NEES midcourse mean (6-D; ideal 6)", _num(t["nees_midcourse_mean"])),
            (
                f"NEES midcourse above {t['nees_threshold']:g}",
                _num(t["nees_midcourse_share_above"], "%"),
            ),
        ]
        rows += _glide_rows(t)
        rows += [
            ("completeness (stereo-visible, after 20 s)", _num(t["completeness"], "%")),
            ("false-track share of confirmed time", _num(t["false_track_share"], "%")),
            ("longest track run on no object", _num(t["false_run_max_s"], "s")),
            ("tracks on no object for > 10 s", _num(t["tracks_unassigned_over_10s"])),
            ("ID switches", _num(t["id_switches"])),
            ("ID switches, pairs kept within 1 km (CLEAR-MOT)", _num(t["id_switches_clear_mot"])),
            (
                "  of them, the old track still reported (slides)",
                _num(t.get("id_switches_clear_mot_slides")),
            ),
            ("track breaks while in stereo", _num(t["track_breaks_in_stereo"])),
            ("first stereo -> first track, max", _num(t["detection_delay_max_s"], "s")),
            ("objects never tracked", ", ".join(t["objects_never_tracked"]) or "none"),
            (
                "impact error median / 95 % (burnout+300 s)",
                f"{_num(t['impact_error_median_m'], 'm')} / {_num(t['impact_error_p95_m'], 'm')}",
            ),
            ("impact truth inside 3-sigma", _num(t["impact_inside_3sigma_share"], "%")),
            ("launch error median", _num(t["launch_error_median_m"], "m")),
            ("reported phase agrees with truth", _num(t["phase_agreement_share"], "%")),
        ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def format_per_object(d: dict[str, Any], limit: int = 30) -> str:
    """The per-object table of a metrics.json dict (first ``limit`` objects); "" without."""
    t = d.get("truth")
    if not t or not t["per_object"]:
        return ""
    head = (
        f"  {'object':<10} {'tracks':<22} {'switch':>6} {'compl.':>7} {'mid RMSE':>10} "
        f"{'delay':>7} {'impact':>10}"
    )
    lines = [head]
    for o in t["per_object"][:limit]:
        lines.append(
            f"  {o['object_id']:<10} {','.join(o['track_ids'])[:22]:<22} {o['id_switches']:>6} "
            f"{_num(o['completeness'], '%'):>7} {_num(o['position_rmse_midcourse_m'], 'm'):>10} "
            f"{_num(o['detection_delay_s'], 's'):>7} {_num(o['impact_error_median_m'], 'm'):>10}"
        )
    if len(t["per_object"]) > limit:
        lines.append(f"  ... {len(t['per_object']) - limit} more in metrics.json")
    return "\n".join(lines)


def format_comparison(rows: list[Comparison], src: str) -> str:
    """The baseline comparison lines (one per figure) under a ``baseline SRC:`` head."""
    lines = [f"baseline {src}:"]
    w = max(len(r.key) for r in rows)
    for r in rows:
        cur = "missing" if r.current is None else f"{r.current:.6g}"
        lines.append(
            f"  {r.key:<{w}}  baseline {r.baseline:<10.6g} now {cur:<10} "
            f"({r.better} is better, tolerance {r.tolerance:.3g})  {r.verdict}"
        )
    return "\n".join(lines)


def _glide_rows(t: dict) -> list[tuple[str, str]]:
    """Rows of the glide window (truth phase GLIDE) and its turns; none without a glide."""
    if not t["rmse_samples"].get("glide"):
        return []
    pr, vr = t["position_rmse_m"], t["velocity_rmse_mps"]
    both = " / ".join
    return [
        ("position RMSE glide / turns", both(_num(pr[p], "m") for p in ("glide", "turn"))),
        ("velocity RMSE glide / turns", both(_num(vr[p], "m/s") for p in ("glide", "turn"))),
        (
            "NEES glide / turns mean (6-D; ideal 6)",
            both(_num(t[f"nees_{p}_mean"]) for p in ("glide", "turn")),
        ),
        (
            f"NEES glide / turns above {t['nees_threshold']:g}",
            both(_num(t[f"nees_{p}_share_above"], "%") for p in ("glide", "turn")),
        ),
        ("completeness in glide (stereo-visible)", _num(t["completeness_glide"], "%")),
        (
            "track breaks in glide / turns",
            both(_num(t[f"track_breaks_{p}"]) for p in ("glide", "turn")),
        ),
    ]
