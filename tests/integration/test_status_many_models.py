"""`driftline status` against a real Redis holding many model versions: one model's status reads that
model's keys, the list reads one page of states, and both agree with the saved states."""

import threading

import pandas as pd
import pytest

from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.cli.status import load_monitor, model_page
from stream_processors.state import RedisStateStore
from stream_processors.state.redis_store import redis_client

pytestmark = pytest.mark.integration

MODELS = 30


def _fill(settings) -> RedisStateStore:
    store = RedisStateStore(settings.redis, settings.app_id)
    processor = BatchProcessor(settings, store)
    frame = drifting_credit_data(n=400, seed=3, shift_sigma=0.0)
    messages = []
    for i in range(MODELS):
        events, _ = rows_to_events(frame.head(50 + 10 * i), plan_columns(frame), f"m{i:02d}")
        messages.append(IncomingMessage("t", 0, i, encode_envelope(f"m{i:02d}", events, "1"), f"m{i:02d}".encode()))
    assert store.commit(processor.process(messages))
    return store


def _commands_during(settings, action) -> list[str]:
    """The Redis commands that touched this app's keys while ``action`` ran (Redis's MONITOR)."""
    seen: list[str] = []
    ready, done = threading.Event(), threading.Event()

    def watch():
        with redis_client(settings.redis).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if done.is_set() and "driftline-status-sentinel" in command["command"]:
                    return
                if settings.app_id in command["command"]:
                    seen.append(command["command"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    action()
    done.set()
    redis_client(settings.redis).get("driftline-status-sentinel")
    thread.join(10)
    assert not thread.is_alive()
    return seen


def test_a_named_version_is_read_from_its_own_key_without_the_registry(settings):
    _fill(settings)
    holder = {}
    commands = _commands_during(settings, lambda: holder.update(m=load_monitor(settings, "m07", "1")[0]))
    assert holder["m"].events == 50 + 70
    # no registry read, no other model's key
    assert commands and not [c for c in commands if c.upper().startswith("HGETALL ")], commands
    # besides the key layout (one fixed key: the partition count), only the model's own keys
    layout = [c for c in commands if c.endswith(f"{settings.app_id}:layout")]
    assert len(layout) <= 1 and all(":m07:" in c for c in commands if c not in layout), commands


def test_the_list_is_one_sorted_page_with_the_total(settings):
    store = _fill(settings)
    holder = {}
    commands = _commands_during(settings, lambda: holder.update(page=model_page(settings, "events", 5)))
    page = holder["page"]
    summaries = pd.DataFrame([{"model": m, "version": v, **s} for (m, v), s in store.model_summaries().items()])
    expected = summaries.sort_values(["events", "model"], ascending=[False, True]).head(5)
    assert page["total"] == len(summaries) == MODELS
    assert [r["model"] for r in page["models"]] == list(expected["model"])
    assert [r["events"] for r in page["models"]] == list(expected["events"]) == [340 - 10 * i for i in range(5)]
    saved = store.load([(r["model"], "1") for r in page["models"]])
    assert [r["decision"] for r in page["models"]] == [s["policy"]["verdict"]["verdict"] for s in saved.values()]
    # one registry read, and the states of the page only
    assert sum(c.upper().startswith("HGETALL ") for c in commands) == 1, commands
    loaded = " ".join(c for c in commands if c.upper().startswith(("GET ", "MGET ")))
    assert all(f"m{i:02d}" in loaded for i in range(MODELS - 5, MODELS))
    assert not any(f"m{i:02d}" in loaded for i in range(MODELS - 5))



def test_status_of_a_named_version_reads_only_its_partition_fields(settings):
    """``model_status`` (state, labels, quarantine) with 8 partitions: no HGETALL of every partition's hashes,
    only the model's partition's keys (and the key layout)."""
    from producers.partitioning import partition_for
    from stream_processors.cli.status import model_status
    from stream_processors.state.keys import AppKeys

    settings = settings.replace(topic_partitions=8)
    store = RedisStateStore(settings.redis, settings.app_id, 8)
    store.prepare()
    processor = BatchProcessor(settings, store)
    frame = drifting_credit_data(n=60, seed=3, shift_sigma=0.0)
    models = [f"m{i:02d}" for i in range(12)]
    messages = []
    for i, model in enumerate(models):
        events, _ = rows_to_events(frame.head(20), plan_columns(frame), model)
        messages.append(IncomingMessage(settings.inference_topic, partition_for(model, 8), i,
                                        encode_envelope(model, events, "1"), model.encode()))
    label = encode_envelope("m07", [{"event_id": "nowhere", "label": 1, "timestamp": 1.0}], kind="label")
    messages.append(IncomingMessage(settings.label_topic, partition_for("m07", 8), 0, label, b"m07"))
    assert store.commit(processor.process(messages))
    holder = {}
    commands = _commands_during(settings, lambda: holder.update(s=model_status(settings, "m07", "1")))
    assert holder["s"]["events"] == 20 and holder["s"]["labels"]["pending"] == 1, holder["s"]["labels"]
    assert holder["s"]["quarantined"] is None
    assert commands and not [c for c in commands if c.upper().startswith("HGETALL ")], commands
    keys = AppKeys(settings.app_id, 8)
    own = keys.for_model("m07").tag
    assert [c for c in commands if own in c and "labels" in c], commands  # its label counts were read
    assert all(own in c or c.endswith(keys.layout) for c in commands), commands
