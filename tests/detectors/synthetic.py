"""Synthetic streams shared by the detector tests."""

import numpy as np


def ar1(rng: np.random.Generator, n: int, phi: float = 0.5) -> np.ndarray:
    """A stationary AR(1) series with unit innovations."""
    noise = rng.normal(0, 1, n)
    out = np.empty(n)
    out[0] = noise[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + noise[i]
    return out
