"""Geometry helpers of services/evaluation/plots/ (the plots themselves are checked by eye)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_tracking import SyntheticMissile, truth_frames

from tracklayer.fusion.evaluation import evaluate, inside_ellipse
from tracklayer.services.evaluation.plots import write_plots
from tracklayer.services.evaluation.plots.common import ellipse_en, lon_text, wrap_lon


def test_drawn_ellipse_is_the_one_the_metrics_test_against():
    # points of the drawn 3-sigma outline lie on the boundary used for "inside 3-sigma"
    pts = ellipse_en(1200.0, 400.0, 35.0)
    th = np.radians(35.0)
    a = pts[:, 0] * np.sin(th) + pts[:, 1] * np.cos(th)
    b = pts[:, 0] * np.cos(th) - pts[:, 1] * np.sin(th)
    np.testing.assert_allclose((a / 3600.0) ** 2 + (b / 1200.0) ** 2, 1.0, atol=1e-9)
    assert inside_ellipse(*(0.99 * pts.T), 1200.0, 400.0, 35.0).all()
    assert not inside_ellipse(*(1.01 * pts.T), 1200.0, 400.0, 35.0).any()


def test_longitudes_unwrap_across_the_antimeridian():
    lon = np.array([170.0, 179.5, -179.5, -170.0])
    w = wrap_lon(lon, 170.0)
    np.testing.assert_allclose(w, [170.0, 179.5, 180.5, 190.0])
    assert lon_text(190.0) == "170°W"


@pytest.mark.parametrize(("x", "text"), [(0.0, "0°"), (100.0, "100°E"), (-122.5, "122.5°W")])
def test_longitude_labels(x, text):
    assert lon_text(x) == text


def test_plots_survive_runs_with_nothing_to_show(tmp_path):
    untracked = evaluate([], truth_frames([SyntheticMissile("X", flight_s=100)]))
    assert len(write_plots(untracked, tmp_path / "a", "untracked")) == 5
    assert len(write_plots(evaluate([]), tmp_path / "b", "empty")) == 3
