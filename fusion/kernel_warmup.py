"""Every compiled kernel of :mod:`.kernels` called once on tiny inputs, so numba compiles
it (or loads it from its disk cache) before the first frame needs it: the body of
:func:`.kernels.warm`. The inputs are shaped like the tracker's (states (N, 9) in m and
m/s, covariances (N, 9, 9), unit lines of sight (N, 3), times in s or ns), their values
only have to be valid."""

from __future__ import annotations

import numpy as np

from . import kernels


def warm_every_kernel() -> bool:
    """Call each kernel once; whether every one is compiled (none failed)."""
    x = np.zeros((1, 9))
    x[0, 0] = 7.0e6
    P = np.eye(9)[None]
    one = np.ones(1)
    los = np.array([[1.0, 0.0, 0.0]])
    kernels.predict_short(x, P, one, 0.0 * one, one, one)
    kernels.update(x, P, np.zeros((1, 2)), np.full((1, 2, 3), 1e-7), 1e-5 * one)
    kernels.update_at(
        x.copy(), P.copy(), np.zeros(1, np.int64), np.zeros((1, 2)), np.full((1, 2, 3), 1e-7), one
    )
    kernels.gate(x, P, np.zeros(3), los, 1e-5 * one, 10.0 * one)
    kernels.may_gate(x, np.ones((1, 9)), 0.0 * one, np.zeros(3), los, 1e-5 * one, 10.0 * one)
    kernels.propagate_to_surface(
        x[:, :3], x[:, 3:6], 1e-3 * one, 10.0, 20.0, 1.0, (1e5, 2e4, 1e4, 20.0, 2.5e5)
    )
    kernels.meet(
        x[0, :3], los, 1e-5 * one, np.zeros((1, 13)), 1.0, (0.0, 1.0, 1.0, 1.0, 1.0), np.ones(7)
    )
    kernels.add_rows(np.zeros((1, 13)), 0, 1.0, 0, x[0, :3], los, 1e-5 * one, 1.0)
    kernels.in_view(np.ones(3), x[:, :3], 1.0, 0.0, (2.0, 1.0), (0.0, 0.0, 0.0))
    kernels.two_nearest(los, los)
    t_ns, row = np.zeros(1, np.int64), np.zeros(1, np.int64)
    kernels.may_gate_at(x, P, t_ns, row, 1, np.zeros(3), los, 1e-5 * one, 10.0 * one)
    kernels.predict_at(x.copy(), P.copy(), t_ns, row, 1, (one, one, one), 2.0)
    track, det, w = np.array([0, 0, 1]), np.array([0, 1, 1]), one[[0, 0, 0]]
    for adjust in (None, np.ones(3)):
        kernels.assign_pairs(track, det, w, w, 9.0 * np.ones(2), adjust)
    kernels.stream_groups(np.ones((2, 9)), 1.0, 1.0, 2)
    kernels.near_pairs(np.zeros((2, 3)), 1.0, np.ones(2), 1.0)
    tau = np.linspace(0.0, 10.0, 5)
    kernels.launch_fit(
        tau, 6.4e6 + tau[:, None] * np.ones((5, 3)), np.ones(5), 2, -np.arange(0.0, 1.0, 0.1), 2e3
    )
    return all(k.compiled is not None for k in kernels._KERNELS.values())
