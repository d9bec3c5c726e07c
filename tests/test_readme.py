"""The README's Python examples run as written, and its two commands are the Makefile's."""
import pathlib
import re

import gpytorch
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:  # blocks build on each other, as a reader would paste them
        exec(compile(block, "README.md", "exec"), namespace)
    # the quick-start model is a working ExactGP: its marginal likelihood improves with training
    model, likelihood = namespace["model"], namespace["likelihood"]
    x, y = namespace["x"], namespace["y"]
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    model.train(); likelihood.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_readme_two_commands_are_make_targets():
    head = README.split("```")[1]
    assert "make run" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
