import numpy as np
import orjson
import pytest

from detectors import NumericDriftMonitor
from tests.detectors.synthetic import ar1


def _run(values, chunks, restore=False):
    monitor = NumericDriftMonitor()
    firings, offset = [], 0
    for chunk in np.array_split(values, chunks):
        if restore:
            monitor = NumericDriftMonitor.from_dict(orjson.loads(orjson.dumps(monitor.to_dict())))
        firings += [(f.detector, f.position + offset, f.events_seen) for f in monitor.update(chunk)]
        offset += chunk.size
    return firings


def _shifted(seed, n=12000, at=6000, shift=1.0):
    rng = np.random.default_rng(seed)
    values = rng.normal(100.0, 5.0, n)
    values[at:] += shift * 5.0
    values[rng.random(n) < 0.03] = np.nan
    return values


@pytest.mark.parametrize("chunks", [7, 61, 400])
def test_same_firings_whatever_the_batching(chunks):
    values = _shifted(0)
    assert _run(values, chunks) == _run(values, 1)


def test_same_firings_after_save_and_restore_between_batches():
    values = _shifted(1)
    assert _run(values, 53, restore=True) == _run(values, 1)


@pytest.mark.parametrize("seed", range(5))
def test_one_sigma_shift_is_found_soon_after_it_starts(seed):
    values = _shifted(seed)
    firings = _run(values, 1)
    assert firings, "a 1 sigma shift must be detected"
    first = min(p for _, p, _ in firings)
    assert 6000 <= first <= 6000 + 400


def test_quiet_on_a_long_stationary_stream():
    rng = np.random.default_rng(11)
    for _ in range(5):
        assert _run(rng.normal(0, 1, 100_000), 50) == []


def test_position_names_the_last_value_of_the_block():
    monitor = NumericDriftMonitor(pilot_size=100, baseline_blocks=10, block_size=10)
    rng = np.random.default_rng(5)
    values = np.r_[rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)]
    firings = monitor.update(values)
    assert firings
    # pilot 100 values, baseline 10 blocks of 10, then blocks of 10: a block ends at 200 + 10k - 1
    assert all((f.position - 199) % 10 == 0 for f in firings)
    assert all(f.events_seen == f.position + 1 for f in firings)




@pytest.mark.parametrize("make", [lambda r: ar1(r, 300_000), lambda r: r.standard_t(3, 300_000)],
                         ids=["ar1", "student_t3"])
def test_quiet_on_autocorrelated_and_heavy_tailed_streams(make):
    assert _run(make(np.random.default_rng(2)), 30) == []


def test_with_a_reference_the_baseline_is_known_from_the_start():
    rng = np.random.default_rng(8)
    monitor = NumericDriftMonitor.from_reference(rng.normal(50, 4, 20000))
    assert monitor.monitoring
    firings = monitor.update(np.r_[rng.normal(50, 4, 300), rng.normal(52, 4, 600)])
    assert firings and 300 <= firings[0].position <= 300 + 300
    assert firings[0].shift_sigma > 0.25


def test_without_reference_a_firing_starts_a_new_baseline():
    rng = np.random.default_rng(9)
    values = np.r_[rng.normal(0, 1, 8000), rng.normal(1, 1, 30000)]
    firings = NumericDriftMonitor().update(values)
    assert len({f.position for f in firings}) == 1  # the new level becomes the new normal


def test_page_hinkley_can_be_chosen():
    rng = np.random.default_rng(10)
    monitor = NumericDriftMonitor(detectors=("page_hinkley",))
    firings = monitor.update(np.r_[rng.normal(0, 1, 6000), rng.normal(2, 1, 1000)])
    assert firings and {f.detector for f in firings} == {"page_hinkley"}


def test_bad_arguments():
    with pytest.raises(ValueError):
        NumericDriftMonitor(block_size=0)
    with pytest.raises(ValueError):
        NumericDriftMonitor(detectors=("magic",))


@pytest.mark.parametrize("shift", [-1.0, 1.0])
def test_a_firing_says_which_way_the_mean_moved(shift):
    rng = np.random.default_rng(21)
    values = np.r_[rng.normal(10, 2, 8000), rng.normal(10 + 2 * shift, 2, 4000)]
    firings = [f for detector in ("cusum", "adwin", "page_hinkley")
               for f in NumericDriftMonitor(detectors=(detector,)).update(values) if f.position >= 8000]
    assert {f.detector for f in firings} >= {"cusum", "adwin"}
    assert all(f.direction == int(shift) for f in firings), firings
    before = np.mean(values[:8000])
    assert all(np.sign(np.mean(values[8000:f.position + 1]) - before) == f.direction for f in firings)


def test_the_cusum_side_survives_its_saved_form():
    from detectors.cusum import Cusum

    cusum = Cusum(k=0.5, h=100.0)
    for x in (-2.0, -2.0, -2.0):
        cusum.update(x)
    assert cusum.direction == -1 and Cusum.from_dict(cusum.to_dict()).direction == -1
    assert Cusum(k=0.5, h=1.0).update(3.0) and cusum.update(50.0) is False and cusum.direction == 1


def test_the_recent_level_says_a_shift_is_still_there_after_the_detectors_reset():
    rng = np.random.default_rng(5)
    reference = rng.normal(0.0, 1.0, 20000)
    monitor = NumericDriftMonitor.from_reference(reference)
    assert monitor.update(rng.normal(0.0, 1.0, 4000)) == [] and monitor.last_shifted_position is None
    assert monitor.update(rng.normal(0.3, 1.0, 4000))  # fires, and the detectors start afresh
    restored = NumericDriftMonitor.from_dict(orjson.loads(orjson.dumps(monitor.to_dict())))
    assert restored.to_dict() == monitor.to_dict()
    restored.update(rng.normal(0.3, 1.0, 1000))
    assert restored.last_shifted_position == 999 and restored.last_shifted_direction == 1
    restored.update(rng.normal(0.0, 1.0, 6000))
    restored.update(rng.normal(0.0, 1.0, 1000))
    assert restored.last_shifted_position is None  # back at the baseline
