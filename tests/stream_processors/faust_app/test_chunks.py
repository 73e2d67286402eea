"""How the worker cuts a consumed batch into chunks, each processed and saved as one step."""

import time

from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.faust_app.app import chunks
from stream_processors.state.memory import MemoryStateStore
from tests.stream_processors.test_bounds import _envelope, _event


def _message(offset, key, size=10):
    return IncomingMessage("t", 0, offset, b"x" * size, None if key is None else key.encode())


def test_chunks_keep_order_and_every_bound():
    messages = [_message(i, f"m{i % 7}", size=100 + i) for i in range(500)]
    cut = chunks(messages, max_messages=60, max_bytes=5000, max_models=5)
    assert [m for c in cut for m in c] == messages
    for c in cut:
        assert len(c) <= 60 and (sum(len(m.value) for m in c) <= 5000 or len(c) == 1)
        assert len({m.key for m in c}) <= 5
    # only one of the bounds binds at a time: 3 models, no byte limit -> chunks of max_messages
    assert [len(c) for c in chunks([_message(i, f"m{i % 3}") for i in range(250)], 100, 10**9, 20)] == [100, 100, 50]


def test_a_message_without_a_key_counts_as_a_model_of_its_own():
    cut = chunks([_message(i, None) for i in range(45)], max_messages=1000, max_bytes=10**9, max_models=20)
    assert [len(c) for c in cut] == [20, 20, 5]


def test_small_messages_each_keyed_by_a_new_model_cost_about_what_ordinary_ones_do():
    """1000 messages of 50 events, each message a new model and each event a new version (the worst a chunk
    of many small messages can ask: 50,000 new versions), against 1000 ordinary messages of 16 models. Cut as
    the worker cuts them, the hostile batch stays within a few times the ordinary one (CPU time)."""
    settings = Settings()
    hostile, ordinary, serial = [], [], 0
    for k in range(1000):
        events = []
        for j in range(50):
            serial += 1
            events.append(_event(serial, model=f"new{k}", model_version=f"v{j}"))
        hostile.append(IncomingMessage("t", 0, k, _envelope(events), key=f"new{k}".encode()))
        ordinary.append(IncomingMessage("t", 0, k, _envelope([_event(50 * k + j, model=f"m{k % 16}")
                                                              for j in range(50)]), key=f"m{k % 16}".encode()))

    def cpu(messages):
        processor, started = BatchProcessor(settings, MemoryStateStore()), time.process_time()
        for chunk in chunks(messages, settings.batch_max_messages, settings.batch_max_bytes, settings.batch_max_models):
            processor.process(chunk)
        return time.process_time() - started

    ordinary_s = cpu(ordinary)
    first_chunk = chunks(hostile, settings.batch_max_messages, settings.batch_max_bytes, settings.batch_max_models)[0]
    assert len(first_chunk) == settings.batch_max_models
    chunk_s = cpu(first_chunk)
    # one chunk of the hostile batch (1000 new versions) is bounded like a whole ordinary batch
    assert chunk_s < 3 * ordinary_s + 1.0, (chunk_s, ordinary_s)
