"""gpbound.covering: Theorem 3 (covering the unit l1 ball by Euclidean balls) and the entropy integral.

Needs no kernel. Public API::

    log_covering_number(eps, n)               ln N(eps), eq. (36), vectorised
    entropy_integral(n, method="numeric")     "numeric" | "closed" (a~_n) | "paper" (a_n, eq. 37) | "maurey"
    a_n_paper(n), a_n_tilde(n), first_piece(n), middle_piece(n)
    maurey_cover(n, eps)                      constructive cover (Maurey's empirical method)
    sample_l1_ball_points(n, num), covering_radius(centers, points)
"""

from .theorem3 import log_covering_number
from .entropy import (
    ENTROPY_METHODS,
    a_n_paper,
    a_n_tilde,
    entropy_integral,
    first_piece,
    middle_piece,
    middle_piece_maurey,
)
from .maurey import MaureyCover, covering_radius, maurey_cover, sample_l1_ball_points

__all__ = [
    "log_covering_number",
    "entropy_integral",
    "first_piece",
    "middle_piece",
    "middle_piece_maurey",
    "a_n_paper",
    "a_n_tilde",
    "ENTROPY_METHODS",
    "maurey_cover",
    "MaureyCover",
    "sample_l1_ball_points",
    "covering_radius",
]
