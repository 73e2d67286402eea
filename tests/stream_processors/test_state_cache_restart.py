"""A restart or a rebalance in the middle of a stream (an empty state cache, states read back from the store)
leaves the bytes an uninterrupted run with the cache saves: a rebuild starts from the record as it was at the
start of the batch, never from one that applying events changed through lists it shares with a restored state."""
import dataclasses

import orjson
import pytest

from stream_processors.batch import BatchProcessor
from stream_processors.state import MemoryStateStore
from tests.stream_processors import test_state_cache_fuzz as t


def _batches(seed):
    return t.stream_batches(seed)


def _run(settings, batches, restart_at=None, rebalance_at=None):
    store = MemoryStateStore(clock=lambda: 5000.0)
    processor = BatchProcessor(settings, store)
    for i, batch in enumerate(batches):
        if i == restart_at:
            processor = BatchProcessor(settings, store)  # a restarted worker: same code, empty cache
        if i == rebalance_at:
            processor.rebalanced()
        outcome = processor.process(batch)
        assert store.commit(outcome)
        processor.committed(outcome.offsets)
    return store.load([("m", "0"), ("m", "1"), ("m", "2")])


@pytest.mark.parametrize("how", ["restart", "rebalance"])
def test_an_interruption_changes_the_saved_state_with_the_cache(how, monkeypatch):
    import time as _t
    monkeypatch.setattr(_t, "time", lambda: 5000.0)
    batches = _batches(5)
    kw = {"restart_at": 4} if how == "restart" else {"rebalance_at": 4}
    uncached = dataclasses.replace(t.BASE, state_cache_versions=0)
    # without the cache, an interruption changes nothing (main's guarantee)
    assert _run(uncached, batches) == _run(uncached, batches, **kw)
    # with the cache, the same interruption changes the saved state
    plain, interrupted = _run(t.BASE, batches), _run(t.BASE, batches, **kw)
    differing = [k for k in plain if plain[k] != interrupted[k]]
    assert not differing, f"{how} at batch 4 changed {differing}: estimate_early " \
        f"{plain[('m', '0')]['performance']['estimate_early']} vs " \
        f"{interrupted[('m', '0')]['performance']['estimate_early']}"
