"""gpbound: adversarial robustness guarantees for random deep neural networks.

Implements De Palma, Kiani & Lloyd, *Adversarial Robustness Guarantees for
Random Deep Neural Networks* (ICML 2021, arXiv:2004.05923):

* :mod:`gpbound.kernels`  -- the layer language, its finite networks and its
  infinite-width NNGP kernels (GPyTorch kernels);
* :mod:`gpbound.covering` -- Theorem 3 (covering the l1 ball) and the entropy integral;
* :mod:`gpbound.rkhs`, :mod:`gpbound.constants`, :mod:`gpbound.dudley`,
  :mod:`gpbound.borell_tis`, :mod:`gpbound.radii` -- the bounds of Theorems 1, 2,
  Corollary 1 and Remark 5;
* :mod:`gpbound.sampling`, :mod:`gpbound.attacks`, :mod:`gpbound.experiments` --
  measurements that check the bounds;
* :mod:`gpbound.report`, :mod:`gpbound.cli` -- the report of verified bounds.
"""

__version__ = "0.1.0"
