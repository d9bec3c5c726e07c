"""Corollary 1 radii for the paper's residual network (theory preset) at the paper's input sizes.

Prints, for n = 3 s^2 (s = 4, 8, ..., 32), x0 with the expected norms of pixels uniform on [0, 1]
(|x0|_2 = sqrt(n/3), |x0|_1 = n/2, |x0|_inf ~ 1) and delta = 0.01, 0.1, 0.5:

* the certified l1-ball radius (eq. 39-40) with the numeric / closed (a~_n) / paper (a_n) /
  maurey entropy value, and the printed eq. (10)/(16) radius (comparison only);
* the segment radius (derived form, and the printed eq. 12/18);
* relative l1, l2 and linf radii (Remark 5; numeric entropy): radius / |x0|_p.

Run: ``python benchmarks/radii_table.py``.
"""

import math
import time

import numpy as np

from gpbound.covering import entropy_integral
from gpbound.radii import l1_ball_radius, l1_ball_radius_eq10, lp_radius, segment_radius

SIZES = (4, 8, 12, 16, 20, 24, 28, 32)
DELTAS = (0.01, 0.1, 0.5)


def resnet_M(s):
    """Theorem 2's M for the theory-preset residual network at image size s."""
    from gpbound.kernels.presets import get_preset

    return float(get_preset("resnet", image_size=s).M), "gpbound.kernels.presets"


def main():
    t0 = time.perf_counter()
    ns = np.array([3 * s * s for s in SIZES])
    ent = {m: entropy_integral(ns, method=m) for m in ("numeric", "closed", "paper", "maurey")}
    t_ent = time.perf_counter() - t0
    rows = []
    sources = set()
    for s, n in zip(SIZES, ns):
        M, src = resnet_M(s)
        sources.add(src)
        x2 = math.sqrt(n / 3.0)
        for d in DELTAS:
            r = {m: l1_ball_radius(x2, d, n, M, entropy=m) for m in ent}
            rows.append(
                (
                    n, d, M,
                    r["numeric"], r["closed"], r["paper"], r["maurey"], l1_ball_radius_eq10(x2, d, n, M),
                    segment_radius(x2, d, M), segment_radius(x2, d, M, form="eq12"),
                    r["numeric"] / (n / 2.0),
                    lp_radius(2, x2, d, M, n=n) / x2,
                    lp_radius(math.inf, x2, d, M, n=n) / 1.0,
                )
            )
    t_all = time.perf_counter() - t0
    print("Corollary 1 radii, residual network (theory preset); M from:", ", ".join(sorted(sources)))
    print("x0: pixels uniform on [0,1]: |x0|_2 = sqrt(n/3), |x0|_1 = n/2, |x0|_inf = 1\n")
    print("entropy integral a:   n   numeric     closed(a~)  paper(a_n)  maurey")
    for i, n in enumerate(ns):
        print(
            f"{'':17}{n:5d}  {ent['numeric'][i]:10.5f}  {ent['closed'][i]:10.5f}  {ent['paper'][i]:10.5f}"
            f"  {ent['maurey'][i]:10.5f}"
        )
    hdr = (
        f"\n{'n':>5} {'delta':>5} {'M':>3} | {'l1 numeric':>10} {'l1 closed':>10} {'l1 paper':>10} {'l1 maurey':>10}"
        f" {'l1 eq10':>10} |"
        f" {'seg deriv':>9} {'seg eq12':>9} | {'rel l1':>9} {'rel l2':>9} {'rel linf':>9}"
    )
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        n, d, M = row[:3]
        v = row[3:]
        print(
            f"{n:5d} {d:5.2f} {M:3.0f} | {v[0]:10.3e} {v[1]:10.3e} {v[2]:10.3e} {v[3]:10.3e} {v[4]:10.3e} |"
            f" {v[5]:9.3e} {v[6]:9.3e} | {v[7]:9.2e} {v[8]:9.2e} {v[9]:9.2e}"
        )
    print(
        f"\nentropy integrals for {len(ns)} n x 4 methods: {t_ent * 1e3:.1f} ms; "
        f"whole table ({len(rows)} rows, numeric quad re-run per call): {t_all * 1e3:.1f} ms"
    )
    print("rel lp = certified lp radius / |x0|_p (Remark 5, numeric entropy); eq10 / eq12: printed forms, comparison only.")


if __name__ == "__main__":
    main()
