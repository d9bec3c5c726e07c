r"""Feature-map Lipschitz constants: a proved L with :math:`d(x, y) \le L\,\|x - y\|_2` for all x, y.

:math:`d` is the RKHS distance of eq. (7), :math:`d(x,y)^2 = K(x,x) - 2K(x,y) + K(y,y)
= E(\phi(x) - \phi(y))^2` for the GP :math:`\phi` with kernel K. The instance-specific
certificates (:func:`gpbound.radii.instance_radius`) and the posterior certificates need it.

NNGP kernels of a layer description (proof; ``docs/theory.md`` §8)
-------------------------------------------------------------------
Track, layer by layer, the pixel average of the squared increments
:math:`m = \frac1{|I|}\sum_{\alpha\in I} E(\phi_\alpha(x) - \phi_\alpha(y))^2` (the same for every
channel at infinite width). Biases cancel in increments.

* input: the state :math:`K_{\alpha\alpha'} = \frac1{C_0}\sum_c x_{c\alpha}y_{c\alpha'}` gives
  :math:`m_0 = \|x - y\|_2^2 / n`.
* ``Conv`` (circular, patch P): :math:`D'_\alpha = \frac{\sigma_w^2}{|P|}\sum_{\beta\in P} D_{\alpha+\beta}`,
  so :math:`m' = \sigma_w^2 m` exactly (every pixel is visited |P| times).
* ``Flatten`` / ``Dense``: :math:`d'^2 = \frac{\sigma_w^2}{|I|}\sum_\alpha D_\alpha = \sigma_w^2 m`.
* ``ReLU``: for centred jointly Gaussian (u, v), :math:`E(\tau(u) - \tau(v))^2 \le \frac12 E(u - v)^2`.
  Proof: :math:`\tau(u) = (u + |u|)/2`, so :math:`4E(\tau(u)-\tau(v))^2 = E(u-v)^2 + 2E[(u-v)(|u|-|v|)]
  + E(|u|-|v|)^2`; the middle term vanishes ((u, v) and (-u, -v) have one law and the integrand is
  odd), and :math:`(|u|-|v|)^2 \le (u-v)^2`. Equality as the correlation tends to 1, so 1/2 is sharp.
  Factor 1/2.
* ``AvgPool``: the block mean of increments has :math:`E(\mathrm{mean}_A\Delta)^2 \le
  \mathrm{mean}_A E\Delta^2` (Cauchy--Schwarz); blocks partition the grid, so :math:`m' \le m`.
* ``Residual``: the branches are uncorrelated (:math:`K' = K + K_{block}`), so
  :math:`m' = m + m_{block} \le (1 + \Lambda_{block}) m`, :math:`\Lambda_{block}` the block's factor.

Hence :math:`L^2 = \Lambda / n`, :math:`\Lambda` the product of the factors along the network
(``sigma_w2`` per weight layer, 1/2 per ReLU, 1 per pooling, :math:`1 + \Lambda_{block}` per skip).
The constant depends on :math:`\sigma_w^2` but not on :math:`\sigma_b^2`.

The product is computed by :meth:`gpbound.kernels.Architecture.lipschitz_factor`, which also covers
strided and zero-padded convolutions, projection and post-activation residuals, global pooling and
per-layer variances (each layer states its factor).
"""
from __future__ import annotations

import math
import numbers

__all__ = ["feature_lipschitz"]


def feature_lipschitz(arch, sigma_w2=2.0) -> float:
    r"""Proved :math:`L` with :math:`d(x,y) \le L\|x-y\|_2` for the NNGP kernel of ``arch``.

    .. math:: L = \sqrt{\Lambda / n}

    (module docstring: the layer factors and their proofs).

    Parameters
    ----------
    arch : gpbound.kernels.Architecture
        With an analytic kernel (``arch.has_kernel``).
    sigma_w2 : float or tensor, > 0
        Weight variance (the same for every layer, as :class:`~gpbound.kernels.NNGPKernel`).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        ``arch`` is not an Architecture.
    ValueError
        The architecture has no analytic kernel, or ``sigma_w2`` is not finite and positive.

    Examples
    --------
    >>> from gpbound.kernels import Architecture, Flatten, ReLU, Dense, serial
    >>> arch = Architecture(serial(Flatten(16), ReLU(), Dense(1)), input_shape=(4,))
    >>> feature_lipschitz(arch, sigma_w2=2.0)   # sqrt(2 * 1/2 * 2 / 4)
    0.7071067811865476
    """
    from gpbound.kernels.layers import Architecture

    if not isinstance(arch, Architecture):
        raise TypeError(f"arch must be a gpbound.kernels.Architecture, got {type(arch).__name__}")
    arch._require_kernel()
    sw2 = float(sigma_w2.detach().reshape(())) if hasattr(sigma_w2, "detach") else sigma_w2
    if isinstance(sw2, bool) or not isinstance(sw2, numbers.Real) or not math.isfinite(sw2) or sw2 <= 0:
        raise ValueError(f"sigma_w2 must be a finite number > 0, got {sigma_w2!r}")
    return math.sqrt(arch.lipschitz_factor(float(sw2)) / arch.n)
