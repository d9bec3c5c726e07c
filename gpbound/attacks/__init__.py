"""Minimal-norm adversarial attacks (l1, l2, linf) with verified, bisected examples.

``minimal_distance(f, x0, norm)`` runs an ensemble of attacks (gradient
linearisation / DeepFool with boundary refinement, FMN, DDN; in a box FMN then the
box-aware FAB attack of :mod:`.fab`) on a scalar function
``f: (B, n) -> (B,)`` whose label is ``sign f``, verifies every example and keeps,
per point, the smallest distance (docs/theory.md section 6).  :mod:`.ensemble` evaluates
many networks of one architecture in one batched call; :mod:`.exact` is the exact
oracle for affine ``f``.
"""
from .core import (ATTACKS, DEFAULT_ATTACKS, DEFAULT_BOXED_ATTACKS, DEFAULT_BOXED_STEPS, DEFAULT_STEPS,
                   AttackResult, minimal_distance)
from .deepfool import linearization_attack, refine_boundary
from .fab import fab_attack
from ..ensemble import NetworkEnsemble, stack_networks
from .exact import affine_closest_point, affine_minimal_distance
from .fmn import ddn_attack, fmn_attack
from .norms import dual_exponent, lp_norm, parse_norm, project_hyperplane_box, project_lp_ball
from .verify import bisect_to_boundary, find_boundary, is_adversarial, verify

__all__ = [
    "minimal_distance", "AttackResult", "ATTACKS", "DEFAULT_ATTACKS", "DEFAULT_BOXED_ATTACKS", "DEFAULT_STEPS",
    "DEFAULT_BOXED_STEPS",
    "linearization_attack", "refine_boundary", "fmn_attack", "ddn_attack", "fab_attack",
    "NetworkEnsemble", "stack_networks",
    "affine_minimal_distance", "affine_closest_point",
    "parse_norm", "dual_exponent", "lp_norm", "project_lp_ball", "project_hyperplane_box",
    "verify", "bisect_to_boundary", "find_boundary", "is_adversarial",
]
