"""Tracking metrics (DESIGN §7): the one implementation used by tests, the CLI and the demo.

Feed a :class:`MetricsAccumulator` with track reports, truth frames and
(SensorFrame, DetectionTruth) pairs in any order, then call ``finish()`` for an
:class:`EvaluationResult`. Inputs are kept in compact numpy arrays (one row per
report, truth sample or true detection), never as per-frame objects.

Definitions (all times are data times):

- Evaluation times: every whole second (Unix epoch) over the span of truth and reports.
- At each evaluation time t, every track whose latest report at or before t has status
  CONFIRMED or COASTING and a state time within ``max_report_age_s`` (2 s) of t is
  *selected*; its error is taken against truth interpolated (cubic Hermite from truth
  positions and velocities) to the report's own ``time``.
- Truth-to-track assignment per evaluation time by GOSPA (p = 2, c = 5 km, alpha = 2)
  over the objects in flight at t (truth span covers t; an object that ended less than a
  report age before t may still be matched but is not counted missed); pairs at distance
  >= c are no assignment. Localisation part: sum of d^p over assigned pairs (m^2); missed and
  false parts: c^p / alpha per unassigned object / track.
- Phase windows per object: boost before burnout (first truth sample not in BOOST);
  midcourse from burnout + 60 s until the object descends through 100 km (geodetic
  altitude, linear between samples); reentry after that descent, or from the highest
  point when it is below 100 km and the object descends afterwards (as the simulator);
  never for a truth that ends still climbing.
- Stereo visibility of an object at t: within [t - 2 s, t] two detections of it (per
  DetectionTruth) from different satellites whose lines of sight (frame sensor position
  -> truth position at the frame time) cross at >= 10 degrees (line angle, in [0, 90]).
- Completeness: share of (object, t) in stereo visibility with t >= first stereo time
  + 20 s that have an assigned track.
- False-track share: selected track-seconds assigned to no object / selected
  track-seconds. ID switch: an object's assigned track id changes to another id (gaps
  without assignment do not count by themselves). Track break: an object assigned at
  one evaluation time and not at the next while it is in stereo visibility.
- Impact: great-circle error of ``report.impact`` vs the end of the object's truth
  (extrapolated to the WGS-84 surface along its velocity), and whether the truth lies
  inside the reported 3-sigma ellipse (local east/north plane at the predicted point).
  Launch likewise against the start of the object's truth.

Modules, in the order the evaluation runs:

- :mod:`.settings`: the fixed definitions (GOSPA c/p/alpha, windows, thresholds) and
  :class:`EvaluationSettings`;
- :mod:`.measures`: GOSPA, NEES, Hermite interpolation, line angles, ellipse tests,
  ground offsets, small statistics (pure numpy);
- :mod:`.reports`: report rows, the sorted :class:`ReportTable`, the per-second grid;
- :mod:`.truth`: :class:`TruthObject` with its phase windows, launch and impact points;
- :mod:`.tracks`: track statistics and the per-second selection of live tracks;
- :mod:`.assignment`: GOSPA assignment of tracks to objects per evaluation time;
- :mod:`.visibility`: stereo visibility per object and evaluation time;
- :mod:`.scoring`: one object's errors and figures;
- :mod:`.summary`: the run's figures over every object;
- :mod:`.results`: :class:`EvaluationResult`, :class:`TrackSeries`, :class:`ObjectSeries`;
- :mod:`.accumulator`: :class:`MetricsAccumulator` and :func:`evaluate`.
- :mod:`.registration`: sensor pointing-bias estimates against the simulator's truth
  (used by ``tracklayer evaluate`` beside the figures above).

Imports only numpy, scipy and ``tracklayer.fusion`` (no services, sensors, gRPC,
protobuf or MCAP).
"""

from .accumulator import MetricsAccumulator, evaluate
from .measures import (
    GospaResult,
    gospa,
    ground_offset_en,
    ground_point_errors,
    hermite_interpolate,
    inside_ellipse,
    line_angle_deg,
    nees,
)
from .results import EvaluationResult, ObjectSeries, TrackSeries
from .settings import (
    COMPLETENESS_GRACE_S,
    FALSE_RUN_LIMIT_S,
    GOSPA_ALPHA,
    GOSPA_C_M,
    GOSPA_P,
    IMPACT_AFTER_BURNOUT_S,
    MAX_REPORT_AGE_S,
    MIDCOURSE_AFTER_BURNOUT_S,
    NEES_THRESHOLD,
    STEREO_MIN_ANGLE_DEG,
    STEREO_WINDOW_S,
    EvaluationSettings,
)
from .truth import TruthObject

__all__ = [
    "COMPLETENESS_GRACE_S",
    "FALSE_RUN_LIMIT_S",
    "GOSPA_ALPHA",
    "GOSPA_C_M",
    "GOSPA_P",
    "IMPACT_AFTER_BURNOUT_S",
    "MAX_REPORT_AGE_S",
    "MIDCOURSE_AFTER_BURNOUT_S",
    "NEES_THRESHOLD",
    "STEREO_MIN_ANGLE_DEG",
    "STEREO_WINDOW_S",
    "EvaluationResult",
    "EvaluationSettings",
    "GospaResult",
    "MetricsAccumulator",
    "ObjectSeries",
    "TrackSeries",
    "TruthObject",
    "evaluate",
    "gospa",
    "ground_offset_en",
    "ground_point_errors",
    "hermite_interpolate",
    "inside_ellipse",
    "line_angle_deg",
    "nees",
]
