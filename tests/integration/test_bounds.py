"""Bounds through a real worker on Kafka and Redis, and the TTLs and sweep LIMIT on a real Redis."""

import time
import uuid

import confluent_kafka
import pytest

from detectors.model.writes import AwaitLabel, KeepPredictions
from producers.events import encode_envelope
from stream_processors.state import RedisStateStore, redis_client
from stream_processors.state.keys import AppKeys
from stream_processors.state.trigger_ledger import TriggerLedger

from .conftest import read_topic, wait_until_applied

pytestmark = pytest.mark.integration


def _event(i, **changes):
    return {"event_id": f"e{i}", "timestamp": 1764000000.0 + i, "features": {"x": float(i % 11)},
            "prediction": i % 2, **changes}


def test_a_worker_dead_letters_other_models_and_versions_past_the_cap(settings, worker_factory):
    settings = settings.replace(max_versions_per_model=2)
    worker = worker_factory(settings).start()
    producer = confluent_kafka.Producer({**settings.kafka.client_config(), "partitioner": "murmur2_random"})
    # model m: events of model "intruder" inside m's envelope, and four versions of which two fit the cap
    mixed = [_event(0), _event(1, model="intruder"), _event(2), _event(3, model="intruder")]
    producer.produce(settings.inference_topic, key=b"m", value=encode_envelope("m", mixed, "1"))
    producer.flush(10)
    wait_until_applied(settings, worker)
    versions = [_event(10 + i, model_version=f"v{i % 4}") for i in range(8)]  # 1 exists; v0 fits; v1..v3 not
    producer.produce(settings.inference_topic, key=b"m", value=encode_envelope("m", versions))
    producer.flush(10)
    wait_until_applied(settings, worker)
    letters = read_topic(settings, settings.dead_letter_topic)
    by_code = {}
    for letter in letters:
        by_code[letter["reason_code"]] = by_code.get(letter["reason_code"], 0) + letter["count"]
    assert by_code == {"model_mismatch": 2, "too_many_versions": 6}
    assert sorted(letter["event_id"] for letter in letters if letter["reason_code"] == "model_mismatch") == \
        ["e1", "e3"]
    summaries = RedisStateStore(settings.redis, settings.app_id).model_summaries()
    assert {k: v["events"] for k, v in summaries.items()} == {("m", "1"): 2, ("m", "v0"): 2}
    assert worker.alive()


@pytest.fixture
def app_id(base_settings):
    app = f"it-ttl-{uuid.uuid4().hex[:10]}"
    yield app
    client = redis_client(base_settings.redis)
    keys = list(client.scan_iter(match=f"driftline:{app}:*")) + \
        list(client.scan_iter(match=f"{{driftline:{app}:p*")) + \
        list(client.scan_iter(match=f"driftline:triggers-*:{app}:*"))
    if keys:
        client.delete(*keys)


class _Commit:
    def __init__(self, offsets, writes):
        self.offsets, self.writes = offsets, writes
        self.states, self.events_total, self.quarantined = {}, {}, []


def test_label_join_keys_carry_ttls_and_the_sweep_honours_its_limit(base_settings, app_id):
    store = RedisStateStore(base_settings.redis, app_id)
    client = redis_client(base_settings.redis)
    hour = int(time.time() // 3600)
    writes = [AwaitLabel("m", f"l{i}", 1, 5.0, deadline=100.0 + i, ttl_s=7200) for i in range(5)]
    writes.append(KeepPredictions("m", hour, 90000, ("p",), (("1", 1, None, 1.0),)))
    assert store.commit(_Commit({("labels", 0): (-1, 0)}, writes))
    prefix = AppKeys(app_id).of(0).tag  # one partition: every key of the app under one tag
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*")]
    growing = [k for k in keys if k.split("}:")[1].split(":")[0] in ("waiting", "label", "pred")]
    assert len(growing) == 7  # the zset, five labels, one prediction bucket
    for key in growing:
        assert 0 < client.ttl(key) <= 90000, key
    assert 7000 < client.ttl(f"{prefix}:waiting:m") <= 7200
    assert store.due_labels("m", 1000.0, 2) == ["l0", "l1"]
    assert len(store.due_labels("m", 1000.0, 1000)) == 5
    # the offsets hash has no TTL: it must never be evicted
    assert client.ttl(f"{prefix}:offsets") == -1


def test_the_triggers_sets_expire(base_settings, app_id):
    ledger = TriggerLedger(base_settings.redis, app_id, "control", ttl_s=1000)
    ledger.mark_done("t1")
    ledger.park("0:5")
    client = redis_client(base_settings.redis)
    assert ledger.is_done("t1") and ledger.is_parked("0:5")
    assert 0 < client.ttl(ledger.done_key) <= 1000
    assert 0 < client.ttl(ledger.parked_key) <= 1000
