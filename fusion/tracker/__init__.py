"""The multi-target angle-only tracker: frames in, track reports out.

``Tracker.process(frame)`` takes frames in application order (time, sensor id,
sequence; DESIGN §6). Per frame, vectorised over all live tracks:

1. predict every track (and every burnout-test shadow) to the frame time in one batch;
2. gate every (track, detection) pair, assign by global nearest neighbour;
3. update the assigned tracks in one batched EKF call;
4. pair the unclaimed detections with recent ones of other sensors (initiation);
5. life cycle on data time: confirmation, coasting, deletion, merging, mode changes;
6. reports: at every status change and at most once per ``report_interval_s``.

Modes of a track's motion model (:mod:`..filters`): BOOST (thrust acceleration
estimated), BALLISTIC (point-mass + J2, ``a = 0``) and DRAG (ballistic below 100 km
with the deceleration estimated). Burnout is declared by the plume going dark or by a
shadow test: a ballistic copy of a boosting track, conditioned on zero thrust, is
updated with the track's detections; if its normalised innovations stay consistent for
``burnout_hold_s`` the track adopts it. A ballistic track whose innovations grow
(fading-memory NIS) reopens its thrust estimate.

Deterministic for a given frame order: no wall clock, no unordered iteration, no
random numbers. Memory is bounded by the live tracks (per-track histories bounded,
deleted tracks dropped).

Modules: :mod:`.tracker` (the :class:`Tracker` facade: process, flush), :mod:`.rows`
(the stacked ``x``/``P`` rows), :mod:`.track` (per-track records), :mod:`.bookkeeping`
(what follows each track's update), :mod:`.modes`
(boost/ballistic/drag, plume and shadow burnout), :mod:`.lifecycle` (every status
transition), :mod:`.reports` (report schedule, impact and launch refresh).
"""

from .track import Mode
from .tracker import Tracker

__all__ = ["Mode", "Tracker"]
