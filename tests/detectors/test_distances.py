import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.distances import (binned_ks, binomial_sf, chi_square_homogeneity, jensen_shannon,
                                 population_stability_index)

REF = np.array([120, 340, 260, 180, 100])
WIN = np.array([10, 30, 35, 15, 10])


def test_chi_square_matches_scipy_contingency():
    stat, dof = chi_square_homogeneity(REF, WIN)
    expected = stats.chi2_contingency(np.vstack([REF, WIN]), correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert dof == expected.dof


def test_chi_square_drops_bins_empty_in_both():
    stat, dof = chi_square_homogeneity(np.r_[REF, 0], np.r_[WIN, 0])
    assert (stat, dof) == pytest.approx(chi_square_homogeneity(REF, WIN))


def test_jensen_shannon_matches_scipy():
    assert jensen_shannon(REF, WIN) == pytest.approx(jensenshannon(REF / REF.sum(), WIN / WIN.sum(), base=2))


def test_psi_matches_its_formula():
    r, w = (REF + 0.5) / (REF + 0.5).sum(), (WIN + 0.5) / (WIN + 0.5).sum()
    assert population_stability_index(REF, WIN) == pytest.approx(np.sum((w - r) * np.log(w / r)))
    assert population_stability_index(REF, REF) == pytest.approx(0.0, abs=1e-12)


def test_binned_ks_matches_ks_statistic_on_binned_samples():
    ref_sample = np.repeat(np.arange(5), REF)
    win_sample = np.repeat(np.arange(5), WIN)
    assert binned_ks(REF, WIN) == pytest.approx(stats.ks_2samp(ref_sample, win_sample).statistic)


def test_binomial_tail():
    assert binomial_sf(3, 100, 0.01) == pytest.approx(1 - stats.binom.cdf(2, 100, 0.01))
    assert binomial_sf(0, 10, 0.5) == 1.0


def test_binned_wasserstein_tracks_scipy_for_a_shift():
    rng = np.random.default_rng(0)
    ref, win = rng.normal(0, 1, 200_000), rng.normal(0.5, 1, 200_000)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    win_counts = np.bincount(np.searchsorted(edges, win, side="right"), minlength=10)
    from detectors.distances import binned_wasserstein

    exact = stats.wasserstein_distance(ref, win)
    approx = binned_wasserstein(ref_counts, win_counts, edges)
    # the central 80% of the reference carries most, not all, of the transport
    assert 0.6 * exact < approx < exact
    assert binned_wasserstein(ref_counts, ref_counts, edges) == 0.0


@pytest.mark.parametrize("k, n, p", [(1, 10, 0.1), (5, 500, 0.001), (60, 500, 0.1), (500, 500, 0.5), (501, 500, 0.5)])
def test_tails_match_scipy_stats(k, n, p):
    from detectors.distances import chi_square_sf

    assert binomial_sf(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)
    assert chi_square_sf(k / 3, 9) == pytest.approx(stats.chi2.sf(k / 3, 9), rel=1e-9)
