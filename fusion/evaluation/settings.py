"""The evaluation's fixed definitions (DESIGN §7) and the settings one run may change.

Units are SI: metres, seconds, degrees where the name says ``_deg``. Times are data
times (Unix epoch), never wall-clock times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..domain import NS_PER_S

GOSPA_C_M = 5000.0  # m: GOSPA cut-off; a pair at c or farther is no assignment
GOSPA_P = 2.0
GOSPA_ALPHA = 2.0
MAX_REPORT_AGE_S = 2.0  # s: a track is selected while its latest report is this fresh
STEREO_WINDOW_S = 2.0  # s: two detections within this window make a stereo look
STEREO_MIN_ANGLE_DEG = 10.0  # deg: least angle between the two lines of sight
COMPLETENESS_GRACE_S = 20.0  # s after the first stereo look before completeness counts
MIDCOURSE_AFTER_BURNOUT_S = 60.0  # s: the midcourse window opens this long after burnout
IMPACT_AFTER_BURNOUT_S = 300.0  # s: impact figures count from burnout + this
NEES_THRESHOLD = 22.5  # ~99.9 % point of chi-square with 6 degrees of freedom
CLEAR_MOT_M = 1000.0  # m: an object keeps its track while it stays this close (CLEAR-MOT)
FALSE_RUN_LIMIT_S = 10.0  # s: a track on no object for longer counts in the summary

# windows of the error figures; "glide" = truth phase GLIDE (a glider's whole flight
# stays below 100 km, so the altitude windows cannot see it), "turn" = its turns (.turns)
PHASES = ("boost", "midcourse", "glide", "turn", "reentry", "all")


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    """Keyword options of :class:`~tracklayer.fusion.evaluation.MetricsAccumulator`.

    ``gospa_c_m`` (m) and ``gospa_p`` define GOSPA (alpha is always 2); a selected
    report may be ``max_report_age_s`` (s) old; stereo visibility needs two detections
    within ``stereo_window_s`` (s) whose lines of sight cross at ``stereo_min_angle_deg``
    (deg) or more; completeness counts from ``completeness_grace_s`` (s) after the first
    stereo look; ``nees_threshold`` is the 6-D NEES above which a sample is counted;
    ``clear_mot_m`` (m) how far a track may be from its object and still keep it in
    the CLEAR-MOT count of identity switches.
    """

    gospa_c_m: float = GOSPA_C_M
    gospa_p: float = GOSPA_P
    max_report_age_s: float = MAX_REPORT_AGE_S
    stereo_window_s: float = STEREO_WINDOW_S
    stereo_min_angle_deg: float = STEREO_MIN_ANGLE_DEG
    completeness_grace_s: float = COMPLETENESS_GRACE_S
    nees_threshold: float = NEES_THRESHOLD
    clear_mot_m: float = CLEAR_MOT_M

    @property
    def max_age_ns(self) -> int:
        """``max_report_age_s`` in whole nanoseconds."""
        return int(self.max_report_age_s * NS_PER_S)

    @property
    def stereo_cos(self) -> float:
        """Cosine of ``stereo_min_angle_deg``: |u1 . u2| at or below it is a stereo pair."""
        return math.cos(math.radians(self.stereo_min_angle_deg))
