"""Distances and tests between a window's binned counts and a reference's.

All take counts over the same bins (numeric values binned by the reference's
quantiles, or categories). Which one decides and which ones are evidence is
documented in the README ("How drift is detected").
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["binned_ks", "binned_wasserstein", "chi_square_homogeneity", "jensen_shannon",
           "population_stability_index"]


def _proportions(counts: np.ndarray, eps: float = 0.0) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64) + eps
    return counts / counts.sum()


def population_stability_index(reference: np.ndarray, window: np.ndarray, eps: float = 0.5) -> float:
    """PSI = sum((w - r) * ln(w / r)) over bins; ``eps`` is added to every count so empty bins stay finite."""
    r, w = _proportions(reference, eps), _proportions(window, eps)
    return float(np.sum((w - r) * np.log(w / r)))


def jensen_shannon(reference: np.ndarray, window: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two binned distributions."""
    r, w = _proportions(reference), _proportions(window)
    m = 0.5 * (r + w)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(r > 0, r * np.log2(r / m), 0.0).sum()
        kl_w = np.where(w > 0, w * np.log2(w / m), 0.0).sum()
    return float(np.sqrt(max(0.0, 0.5 * (kl_r + kl_w))))


def binned_ks(reference: np.ndarray, window: np.ndarray) -> float:
    """Largest gap between the two cumulative distributions at the bin edges (KS on binned data)."""
    return float(np.max(np.abs(np.cumsum(_proportions(reference)) - np.cumsum(_proportions(window)))))


def binned_wasserstein(reference: np.ndarray, window: np.ndarray, edges: np.ndarray) -> float:
    """Wasserstein-1 distance over the inner bins: the integral of |F_window - F_reference| between the
    first and last edge, with the CDFs known at the edges and the gap taken as linear in between.

    The outer bins are unbounded, so mass moving beyond the outermost edges is not counted: with ten
    equiprobable bins this measures the central 80% of the reference.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.size < 2:
        return 0.0
    gap = np.abs(np.cumsum(_proportions(reference))[:-1] - np.cumsum(_proportions(window))[:-1])
    return float(np.sum((gap[:-1] + gap[1:]) / 2 * np.diff(edges)))


def chi_square_homogeneity(reference, window) -> tuple[float, int]:
    """Pearson's chi-square statistic of the 2 x bins table of counts, and its degrees of freedom.

    Bins empty in both samples are left out. A window test runs this for every window, mostly on a dozen bins,
    where numpy's cost per call was most of the time: up to ``_CELLS_IN_PYTHON`` bins the cells are worked out one
    by one and only their sum is numpy's, over the cells in the table's order. Counts are whole numbers, so every
    other sum is exact: the statistic is the same, bit for bit, as the table computed whole (which larger tables
    are).
    """
    reference = np.asarray(reference, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64)
    if reference.shape != window.shape or reference.ndim != 1:
        raise ValueError(f"counts over the same bins are needed, got {reference.shape} and {window.shape}")
    if reference.size > _CELLS_IN_PYTHON:
        return _chi_square_table(reference, window)
    pairs = [(a, b) for a, b in zip(reference.tolist(), window.tolist()) if a + b > 0]
    bins = len(pairs)
    if bins < 2:
        return 0.0, 1
    first = sum(a for a, _ in pairs)
    second = sum(b for _, b in pairs)
    if first == 0 or second == 0:
        return 0.0, bins - 1
    total = first + second
    columns = [a + b for a, b in pairs]
    cells = []
    for row, total_row in ((0, first), (1, second)):
        for pair, column in zip(pairs, columns):
            expected = total_row * column / total
            gap = pair[row] - expected
            cells.append(gap * gap / expected)
    return float(np.add.reduce(np.array(cells))), bins - 1


_CELLS_IN_PYTHON = 64


def _chi_square_table(reference: np.ndarray, window: np.ndarray) -> tuple[float, int]:
    table = np.vstack([reference, window])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0 or table[0].sum() == 0:
        return 0.0, max(table.shape[1] - 1, 1)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected)), table.shape[1] - 1


def chi_square_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof); scipy.special, not scipy.stats: ~100x less overhead."""
    return float(special.chdtrc(dof, statistic))


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(special.bdtrc(k - 1, n, p))
