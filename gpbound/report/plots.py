"""The one matplotlib helper of gpbound: Agg backend, readable fonts, legends off the data, PNG files.

Every figure of the report (and of ``gpbound certify``) is drawn inside :func:`figure`, which
sets the backend (Agg: no display needed), the font sizes and the legend style once, and
saves a PNG with a tight bounding box (so a legend placed outside the axes by
:func:`legend_outside` is kept). :func:`log_ticks` gives log axes enough labelled ticks when
they span few decades; :func:`mark_excluded` marks points left out of a fit.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

__all__ = ["figure", "pyplot", "legend_outside", "legend_inside", "log_ticks", "mark_excluded", "STYLE",
           "PNG_MAGIC", "is_png"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: rcParams of every figure: legible fonts at the report's width, a semi-opaque legend frame
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.85,
    "legend.borderaxespad": 0.4,
    "lines.markersize": 4.5,
}


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (the only place gpbound selects it)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt



@contextmanager
def figure(path, *, ncols=1, nrows=1, figsize=None, dpi=110):
    """Context manager giving ``(fig, axes)``; saves a PNG to ``path`` on exit.

    Parameters
    ----------
    path : str or Path
        Output file; must end in ``.png``.
    ncols, nrows : int
        Grid of axes; ``axes`` is one Axes for a 1 x 1 grid, a list for one row or one column, and
        a list of rows otherwise.
    figsize : (float, float), optional
        Default ``(5.2 ncols, 3.8 nrows)`` inches.
    dpi : int

    Raises
    ------
    ValueError
        ``path`` does not end in ``.png``, or ``ncols``/``nrows`` is not a positive int.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    for name, v in (("ncols", ncols), ("nrows", nrows)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    plt = pyplot()
    figsize = figsize or (5.2 * ncols, 3.8 * nrows)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
        try:
            grid = [list(row) for row in axes]
            if nrows == 1 and ncols == 1:
                yield fig, grid[0][0]
            elif nrows == 1:
                yield fig, grid[0]
            elif ncols == 1:
                yield fig, [row[0] for row in grid]
            else:
                yield fig, grid
            fig.tight_layout()
            path.parent.mkdir(parents=True, exist_ok=True)
            legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None] + list(fig.legends)
            # the tight box is computed from these artists only: the figure's title and texts belong to it
            titles = [s for s in (getattr(fig, "_suptitle", None),) if s is not None] + list(fig.texts)
            fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight",
                        bbox_extra_artists=legends + [a for a in fig.axes] + titles)
        finally:
            plt.close(fig)


def legend_outside(ax, *, where="right", ncol=1, **kw):
    """A legend beside (``where="right"``) or below (``"below"``) the axes, never over the data.

    The PNG of :func:`figure` is saved with a tight bounding box, so the legend is kept.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    if where == "right":
        leg = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=ncol, **kw)
    elif where == "below":
        leg = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=ncol, **kw)
    else:
        raise ValueError(f"where must be 'right' or 'below', got {where!r}")
    # tight_layout must not shrink the axes to make room: the tight bounding box of the saved PNG grows instead
    leg.set_in_layout(False)
    return leg


def legend_inside(ax, **kw):
    """A legend inside the axes where it covers least data (``loc="best"``), with a semi-opaque frame."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    kw.setdefault("loc", "best")
    kw.setdefault("framealpha", STYLE["legend.framealpha"])
    return ax.legend(**kw)


def log_ticks(ax, axis="both"):
    """Labelled ticks at 1, 2 and 5 times the powers of ten on log axes spanning less than 3 decades
    (matplotlib labels only the powers of ten, so a short log axis can show a single label or none)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both', got {axis!r}")
    for name in (("x", "y") if axis == "both" else (axis,)):
        a = ax.xaxis if name == "x" else ax.yaxis
        if a.get_scale() != "log":
            continue
        lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        if lo <= 0 or not math.isfinite(hi) or math.log10(hi / lo) >= 3:
            continue
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        a.set_minor_formatter(NullFormatter())


def mark_excluded(ax, x, y, *, label="left out of the fit", **kw):
    """Draw points that a fit left out as open grey markers (so a reader sees what the line ignores)."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0:
        return None
    kw.setdefault("marker", "o")
    kw.setdefault("facecolors", "none")
    kw.setdefault("edgecolors", "0.45")
    kw.setdefault("zorder", 3)
    return ax.scatter(x, y, label=label, **kw)


def is_png(path) -> bool:
    """True iff ``path`` is a file starting with the PNG signature."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(8) == PNG_MAGIC
