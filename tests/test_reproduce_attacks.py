"""Issue 14: the real attack through the batched Figs 1-2 path (split from test_reproduce.py: each file
< 60 s on 2 cores): batched == unbatched per network and point, and boxed attacks stay in [0, 1]."""
import math

import numpy as np
import torch

from gpbound.experiments.figures import distance_block_task

TINY = dict(preset="faithful", image_size=4, n_points=2, norms=["l1", "l2", "linf"], widths=[8, 8, 8],
            blocks_per_stack=1, dtype="float64", bounds=[0.0, 1.0])


# ------------------------------------------------------------------ batched == unbatched
def test_batched_sweep_equals_unbatched_per_network_and_point():
    """Same seeds: the stacked block (NetworkEnsemble, vmap) and each network attacked alone give the same
    verified distances. Tolerance from the dtype: the two paths round differently (vmap vs plain conv,
    ~1e2 eps relative in f); the attack's margins are 256 eps |f| and its bisection resolves 2^-50, so the
    distances agree to 1e4 eps relative (float64: 2e-12) unless rounding flips a bisection step (f within
    ~1e-14 of 0 at a midpoint: not met with these seeds)."""
    kw = {"steps": 5, "attacks": ("linear", "fmn"), "bisection_steps": 30}   # coord's probe pools rows: not here
    p = {**TINY, "net_seeds": [0, 1]}
    a = distance_block_task({**p, "batched": True}, attack_kwargs=kw)
    u = distance_block_task({**p, "batched": False}, attack_kwargs=kw)
    assert a["batched"] and not u["batched"]
    tol = 1e4 * torch.finfo(torch.float64).eps
    finite = 0
    for ra, ru in zip(a["networks"], u["networks"]):
        assert ra["net_seed"] == ru["net_seed"]
        for nm in TINY["norms"]:
            da, du = np.asarray(ra[nm]["distance"]), np.asarray(ru[nm]["distance"])
            np.testing.assert_array_equal(np.isfinite(da), np.isfinite(du))
            ok = np.isfinite(da)
            finite += int(ok.sum())
            np.testing.assert_allclose(da[ok], du[ok], rtol=tol, atol=0)
            # f(x0) cancels (a sum of terms of both signs): rounding is relative to the terms' scale, ~ max |f|
            scale = np.abs(np.asarray(ru[nm]["output"])).max()
            np.testing.assert_allclose(ra[nm]["output"], ru[nm]["output"], rtol=0,
                                       atol=1e3 * torch.finfo(torch.float64).eps * scale)
    assert finite >= 8


# ------------------------------------------------------------------ box
def test_boxed_attacks_stay_in_the_box():
    seen = []

    def recording(f, x0, norm, **kw):
        from gpbound.attacks import minimal_distance

        res = minimal_distance(f, x0, norm, **kw)
        seen.append((norm, kw.get("bounds"), res, x0.clone()))
        return res

    distance_block_task({**TINY, "net_seeds": [0, 1], "batched": True}, attack=recording,
                        attack_kwargs={"steps": 10, "attacks": ("linear",), "bisection_steps": 20})
    assert len(seen) == 3
    found = 0
    for norm, bounds, res, x0 in seen:
        assert bounds == (0.0, 1.0)
        ok = res.success
        x = res.x_adv[ok]
        assert bool(((x >= 0) & (x <= 1)).all())
        p = {"l1": 1, "l2": 2, "linf": math.inf}[norm]
        d = torch.linalg.vector_norm(x - x0[ok], ord=p, dim=1)
        torch.testing.assert_close(d, res.distance[ok], rtol=1e-12, atol=0)
        found += int(ok.sum())
    assert found >= 6


