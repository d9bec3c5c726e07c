"""Every docstring example of gpbound (its own modules and gpbound.covering) runs as a doctest.

(The kernels package's doctests run in tests/test_kernel_oracle.py.)
"""
import doctest
import importlib
import pkgutil

import pytest

import gpbound
import gpbound.covering

def _modules():
    names = []
    for pkg in (gpbound, gpbound.covering):
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            if not info.name.startswith("gpbound.kernels"):
                names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} doctest examples failed in {name}"


def test_the_doctests_do_run():
    """Some modules do carry examples (a collector that finds none would pass vacuously)."""
    attempted = sum(doctest.testmod(importlib.import_module(n), verbose=False).attempted
                    for n in ("gpbound.radii", "gpbound.gaussian_width", "gpbound.lipschitz", "gpbound.constants"))
    assert attempted >= 8
