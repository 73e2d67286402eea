"""The envelope section's floor: two timed passes of the decoders around the worker, combined."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import throughput  # noqa: E402


@pytest.mark.parametrize("t_before,t_after", [(1.0, 1.0), (0.5, 1.5), (2.0, 0.25), (1e-3, 7.0)])
def test_bracketed_is_the_rate_of_both_passes_together(t_before: float, t_after: float) -> None:
    events = 400_000  # each pass decodes the same events: the floor is all events over all the time
    floor = throughput.bracketed(events / t_before, events / t_after)
    assert floor == pytest.approx(2 * events / (t_before + t_after), rel=1e-12)
    assert min(events / t_before, events / t_after) <= floor * (1 + 1e-12)
    assert floor <= max(events / t_before, events / t_after) * (1 + 1e-12)


def test_decode_floors_times_both_decoders_in_either_order(monkeypatch) -> None:
    messages = [(b"m", orjson.dumps({"events": [{"i": i} for i in range(n)]})) for n in (3, 5)]
    order = []

    def counting(name, loads):
        def wrapped(value):
            order.append(name)
            if name == "json":
                time.sleep(0.02)  # json.loads made clearly the slower, so a swapped pair of rates shows
            return loads(value)
        return wrapped

    for json_last, first, second in ((False, "json", "orjson"), (True, "orjson", "json")):
        order.clear()
        monkeypatch.setattr(throughput.json, "loads", counting("json", json.loads))
        monkeypatch.setattr(throughput.orjson, "loads", counting("orjson", orjson.loads))
        rates = throughput.decode_floors(messages, 8, json_last=json_last)
        monkeypatch.undo()
        assert order == [first] * 2 + [second] * 2
        assert 0 < rates[0] < rates[1], rates  # (json.loads, orjson.loads), whichever ran first
    with pytest.raises(AssertionError):
        throughput.decode_floors(messages, 9)  # the events counted must be the events given


def test_pairs_give_the_median_ratio_and_the_median_drain() -> None:
    pairs = [{"worker": w, "ratio": r} for w, r in ((82_000, 0.287), (64_000, 0.200), (72_000, 0.292))]
    chosen = throughput._median_pair(pairs)
    assert chosen["ratio"] == 0.287 and chosen["worker"] == 82_000  # the pair whose ratio is the median
    assert chosen["ratios"] == [0.287, 0.200, 0.292]
    assert throughput.median_drain(pairs) == 72_000  # not the drain of the median ratio's pair
    two = pairs[:2]  # of two, the lower middle one, for the ratio and the drain alike
    assert throughput._median_pair(two)["ratio"] == 0.200
    assert throughput.median_drain(two) == 64_000
    assert throughput.median_drain(pairs[:1]) == 82_000
