"""Quick start: a GPyTorch ExactGP with the NNGP kernel of a ReLU network, trained on scikit-learn's bundled
8x8 digits (even +1 / odd -1, no download), then certified l2 radii of its classifiers.

Run:  .venv/bin/python docs/examples/quickstart_gp.py        (about 15 s on 2 CPU cores)

The kernel is the infinite-width limit of a fully connected ReLU network on the 64 pixels,
flatten -> 64 -> ReLU -> 64 -> ReLU -> 1 (the layers of ``get_preset("dense", image_size=8, in_channels=1,
width=64, depth=2)``, written here on the flat input, where the kernel is the same and cheaper to compute).
Its weight and bias variances sigma_w2, sigma_b2 are learnt with the output scale, the constant mean and the
noise by maximising the marginal likelihood.  The model is in float64, as recommended for NNGPKernel and as
gpbound.posterior.certify computes.
"""
import gpytorch
import numpy as np
import torch
from sklearn.datasets import load_digits

from gpbound.kernels import Architecture, Dense, Flatten, NNGPKernel, ReLU, serial
from gpbound.posterior import certify

torch.manual_seed(0)
DT = torch.float64

# data: 8x8 grey images in [0, 1], flattened to n = 64; label +1 for an even digit, -1 for an odd one
digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=DT)
y = torch.tensor(np.where(digits.target % 2 == 0, 1.0, -1.0), dtype=DT)
perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
train, test = perm[:300], perm[300:500]
X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]

# the NNGP kernel of a small fully connected ReLU network on the n = 64 pixels
arch = Architecture(serial(Flatten(64), ReLU(), Dense(64), ReLU(), Dense(1)), input_shape=(64,))


class GP(gpytorch.models.ExactGP):
    def __init__(self, x, y, likelihood):
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1))

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


likelihood = gpytorch.likelihoods.GaussianLikelihood()
model = GP(X_train, y_train, likelihood).double()

# a few Adam steps on the exact marginal likelihood
model.train()
mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step in range(30):
    opt.zero_grad()
    loss = -mll(model(X_train), y_train)
    loss.backward()
    opt.step()
    if step in (0, 29):
        print(f"step {step:2d}  -mll/N = {loss.item():.4f}")
kern = model.covar_module.base_kernel
print(f"learnt sigma_w2 = {kern.sigma_w2.item():.3g}, sigma_b2 = {kern.sigma_b2.item():.3g}, "
      f"noise = {model.likelihood.noise.item():.3g}")

# predict: the label is the sign of the posterior mean
model.eval()
with torch.no_grad():
    mean = model.likelihood(model(X_test)).mean
accuracy = (torch.sign(mean) == y_test).double().mean().item()
print(f"test accuracy (even vs odd, {len(X_test)} digits): {accuracy:.3f}")

# certified l2 radii: sign m(x) is constant on the ball of radius mean_radius (deterministic); a posterior
# sample's sign is constant on the ball of radius bayes_radius with probability >= 1 - delta
cert = certify(model, X_test, p=2, delta=0.1)
correct = torch.sign(mean) == y_test
print(f"median certified l2 radius, posterior mean:   {cert.mean_radius.median().item():.4g}")
print(f"median certified l2 radius, Bayes (delta=0.1): {cert.bayes_radius.median().item():.4g}")
print(f"median over the correctly classified points:  mean {cert.mean_radius[correct].median().item():.4g}, "
      f"Bayes {cert.bayes_radius[correct].median().item():.4g}")
