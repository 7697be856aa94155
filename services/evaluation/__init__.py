"""Evaluation outputs beyond the figures themselves (which are computed by
``tracklayer.fusion.evaluation`` from reports and truth): evaluating a recording end
to end for ``tracklayer evaluate`` and the demo (:func:`evaluate_recording` in
``run.py``), the printed tables (``table.py``), baselines to compare against
(``baseline.py``) and the PNG plots (``plots/``, one module per plot family).

May import ``tracklayer.fusion``, ``services.wire`` and ``services.errors``; never
servers, clients or the CLI.
"""

from tracklayer.services.evaluation.run import (
    EXIT_WORSE,
    RecordingEvaluation,
    evaluate_recording,
    read_recording,
)

__all__ = ["EXIT_WORSE", "RecordingEvaluation", "evaluate_recording", "read_recording"]
