"""The paper's experiments: presets (faithful and theory layer descriptions), data,
resumable sweeps (JSON lines; in-process or dask.distributed), Figures 1-4, fits and plots.

Submodules: :mod:`.networks`, :mod:`.data`, :mod:`.sweep`, :mod:`.fit`, :mod:`.train`,
:mod:`.figures`. Nothing here is imported by the mathematics (kernels, covering, bounds).
"""
from .data import (cifar10_binary_labels, load_cifar10_batch, load_digits_binary, load_mnist_idx,
                   mnist_binary_labels, random_images)
from .figures import (percentile_curves, plot_distances_vs_n, plot_percentiles, plot_trained_vs_random,
                      run_distance_sweep, run_trained_vs_random, summarize_distances, fit_distance_slopes)
from .fit import bootstrap_slope, loglog_slope, percentile_curve
from .networks import make_network, preset_info
from .sweep import grid, load_config, read_results, run_sweep, task_key
from .train import accuracy, train_binary

__all__ = [
    "make_network", "preset_info",
    "random_images", "load_digits_binary", "load_mnist_idx", "mnist_binary_labels",
    "load_cifar10_batch", "cifar10_binary_labels",
    "run_sweep", "grid", "task_key", "read_results", "load_config",
    "loglog_slope", "bootstrap_slope", "percentile_curve",
    "train_binary", "accuracy",
    "run_distance_sweep", "summarize_distances", "fit_distance_slopes", "percentile_curves",
    "run_trained_vs_random", "plot_distances_vs_n", "plot_percentiles", "plot_trained_vs_random",
]
