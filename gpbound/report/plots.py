"""Plot helpers of the report: matplotlib with the Agg backend, PNG files only."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

__all__ = ["figure", "PNG_MAGIC", "is_png"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure(path, *, ncols=1, figsize=None, dpi=110):
    """Context manager giving ``(fig, axes)``; saves a PNG to ``path`` on exit.

    Parameters
    ----------
    path : str or Path
        Output file; must end in ``.png``.
    ncols : int
        Number of side-by-side axes (``axes`` is a list when ``ncols > 1``).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    plt = _pyplot()
    figsize = figsize or (5.2 * ncols, 3.8)
    fig, axes = plt.subplots(1, ncols, figsize=figsize, squeeze=True)
    try:
        yield fig, (list(axes) if ncols > 1 else axes)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def is_png(path) -> bool:
    """True iff ``path`` is a file starting with the PNG signature."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(8) == PNG_MAGIC
