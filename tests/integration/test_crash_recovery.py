"""A worker killed with SIGKILL again and again ends with exactly the state of one never killed."""

import random
import signal
import threading
import time

import pytest

from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, replay, rows_to_events
from producers.topics import ensure_topics
from stream_processors.state import RedisStateStore

from .conftest import BACKENDS, end_offsets, model_state, read_topic, wait_until_applied

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("redis_backend", BACKENDS, indirect=True)]


def _applied(settings) -> int:
    """Messages this worker app has applied so far, over all partitions."""
    store = RedisStateStore(settings.redis, settings.app_id)
    offsets = store.offsets([(settings.inference_topic, p) for p in range(settings.topic_partitions)])
    return sum(o + 1 for o in offsets.values())


def _wait_for_progress(settings, worker, beyond: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _applied(settings) <= beyond:
        assert worker.alive(), worker.log()[-3000:]
        assert time.monotonic() < deadline, f"no progress past {beyond} messages in {timeout}s"
        time.sleep(0.1)


KILLS = 5


def _pieces(plan: list[tuple[int, int]], parts: int) -> list[list[tuple[int, int, int]]]:
    """The plan's messages in `parts` pieces of about as many messages, each as runs of
    ``(first event, events, events per message)``."""
    messages, start = [], 0
    for n, size in plan:
        messages += [(start + j * size, size) for j in range(n // size)]
        start += n
    pieces = []
    for k in range(parts):
        runs: list[tuple[int, int, int]] = []
        for first, size in messages[k * len(messages) // parts:(k + 1) * len(messages) // parts]:
            if runs and runs[-1][2] == size:
                runs[-1] = (runs[-1][0], runs[-1][1] + size, size)
            else:
                runs.append((first, size, size))
        pieces.append(runs)
    return pieces


def _send(settings, events: list[dict], plan: list[tuple[int, int]], go: threading.Semaphore,
          abort: threading.Event) -> None:
    """The plan's runs at about 500 events/s in envelopes and 200 messages/s one by one, in KILLS + 1 pieces:
    each piece after the first waits for the test to let it go, before a kill, so that every kill lands while
    messages are still coming."""
    for k, piece in enumerate(_pieces(plan, KILLS + 1)):
        if k and (not go.acquire(timeout=300) or abort.is_set()):
            return  # the test failed meanwhile; its own assertion says why
        for first, n, size in piece:
            replay(bootstrap=settings.kafka.bootstrap, model="credit", model_version="1",
                   events=events[first:first + n], labels=[], inference_topic=settings.inference_topic,
                   label_topic=settings.label_topic, batch_size=size, rate=500 if size > 1 else 200)


PLANS = {"envelopes": [(30000, 50)], "single_events": [(8000, 1)],
         "mixed": [(9000, 50), (2000, 1), (9000, 50), (2000, 1)]}


@pytest.mark.parametrize("plan", PLANS.values(), ids=PLANS.keys())
def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(settings, worker_factory, plan):
    # Same input topic; its own group, state and output topics.
    steady = settings.replace(app_id=settings.app_id + "-steady", control_topic=settings.control_topic + "-steady",
                              dead_letter_topic=settings.dead_letter_topic + "-steady")
    ensure_topics(steady.kafka.bootstrap, [steady.control_topic, steady.dead_letter_topic], 4)
    total_events = sum(n for n, _ in plan)
    frame = drifting_credit_data(n=total_events, seed=5)
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    go, abort = threading.Semaphore(0), threading.Event()
    sender = threading.Thread(target=_send, args=(settings, events, plan, go, abort), daemon=True)
    uninterrupted = worker_factory(steady, "steady").start()
    crashing = worker_factory(settings, "crashing").start()
    sender.start()
    rng = random.Random(7)
    progress_at_kills = [0]
    sent_at_kills = []
    total_messages = sum(n // size for n, size in plan)
    try:
        for _ in range(KILLS):
            _wait_for_progress(settings, crashing, beyond=progress_at_kills[-1])
            go.release()  # the next piece of the stream comes while the worker works and is killed
            time.sleep(rng.uniform(0.0, 1.5))  # then kill at a random moment of its work
            sent_at_kills.append(sum(end_offsets(settings, settings.inference_topic).values()))
            assert crashing.kill(signal.SIGKILL) == -signal.SIGKILL
            progress_at_kills.append(_applied(settings))
            crashing.start()
        sender.join()
    finally:  # a failed step does not leave the sender waiting
        abort.set()
        for _ in range(KILLS):
            go.release()
    wait_until_applied(steady, uninterrupted, timeout=180)
    wait_until_applied(settings, crashing, timeout=180)

    # every kill landed while the stream was still coming (a restart slower than a piece would not), and the
    # worker had applied something since the one before (_wait_for_progress)
    assert all(sent < total_messages for sent in sent_at_kills), \
        f"messages sent at each kill {sent_at_kills} of {total_messages}"

    survived = model_state(settings, "credit", "1")
    reference = model_state(steady, "credit", "1")
    assert survived["events"] == total_events
    assert survived == reference  # every statistic and detector state, bit for bit

    crashed_ids = {a["id"] for a in read_topic(settings, settings.control_topic)}
    steady_ids = {a["id"] for a in read_topic(steady, steady.control_topic)}
    assert steady_ids, "the data drifts: alerts are expected"
    assert crashed_ids == steady_ids  # a restart may publish an alert again, never a different one
