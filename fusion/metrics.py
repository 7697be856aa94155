"""Old path of the evaluation (DESIGN §7): it lives in :mod:`tracklayer.fusion.evaluation`.

Kept so that ``from tracklayer.fusion.metrics import evaluate`` and friends still work;
new code imports from ``tracklayer.fusion.evaluation``.
"""

from .evaluation import *  # noqa: F403
from .evaluation import EvaluationResult
from .evaluation import __all__ as __all__  # noqa: F401

Metrics = EvaluationResult  # the name in the helpers' interface notes
