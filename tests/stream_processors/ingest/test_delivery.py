"""The buffer of events waiting for Kafka is bounded, and envelopes respect the message size (no broker needed)."""

import asyncio
import time

import confluent_kafka
import orjson
import pytest

from producers.events import encode_envelope
from stream_processors.ingest.delivery import DeliveryFailed, KafkaDelivery, cut_envelopes
from stream_processors.ingest.errors import Rejected


def test_past_the_bound_nothing_is_queued():
    async def scenario():
        # nothing listens on port 1: every envelope stays undelivered while the test runs
        delivery = KafkaDelivery("127.0.0.1:1", batch_events=4, linger_s=0.001, max_pending=10,
                                 max_message_bytes=100_000, producer_config={"message.timeout.ms": 1000})
        delivery.start()
        first = delivery.submit("t", "inference", "m", "1", [{"event_id": str(i)} for i in range(8)])
        with pytest.raises(Rejected) as exc:
            delivery.submit("t", "inference", "m", "1", [{"event_id": "x"}] * 3)
        assert exc.value.status == 503 and "limit is 10" in exc.value.message
        assert delivery.pending == 8 and not first.done()
        with pytest.raises(Exception, match="timed out|Timed out"):
            await asyncio.wait_for(first, 30)  # librdkafka gives up after message.timeout.ms: reported, not lost
        assert delivery.pending == 0 and delivery.failed == 8 and delivery.delivered == 0
        delivery.close(0.1)

    asyncio.run(scenario())


def test_envelopes_are_cut_to_the_message_size_and_the_event_count():
    events = [{"event_id": f"e{i}", "features": {"x": "v" * (i % 7 * 20)}} for i in range(100)]
    cut = list(cut_envelopes("m", "1", "inference", events, 30, 2_000))
    assert all(len(value) <= 2_000 and stop - start <= 30 for value, start, stop in cut) and len(cut) > 3
    assert [e["event_id"] for value, _, _ in cut for e in orjson.loads(value)["events"]] == [e["event_id"]
                                                                                            for e in events]
    assert [value for value, _, _ in cut] == [encode_envelope("m", events[a:b], "1") for _, a, b in cut]
    # full envelopes: the next event would not have fitted
    for (value, _, stop), _ in zip(cut, cut[1:]):
        assert stop - _[1] == 0 and (len(value) + 1 + len(orjson.dumps(events[stop])) > 2_000 or
                                     len(orjson.loads(value)["events"]) == 30)
    # an event too large for any envelope goes alone, the others around it as before
    big = [{"event_id": "a"}, {"event_id": "b", "blob": "x" * 3_000}, {"event_id": "c"}]
    assert [(a, b) for _, a, b in cut_envelopes("m", None, "label", big, 30, 2_000)] == [(0, 1), (1, 2), (2, 3)]


class FakeProducer:
    """Delivers every envelope except those larger than ``refuse_over`` bytes, as librdkafka would report."""

    def __init__(self, refuse_over: int) -> None:
        self.refuse_over = refuse_over
        self.values: list[bytes] = []

    def produce(self, topic, value, key, on_delivery):
        if len(value) > self.refuse_over:
            raise confluent_kafka.KafkaException(confluent_kafka.KafkaError(
                confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE))
        self.values.append(value)
        on_delivery(None, None)

    def poll(self, timeout):
        time.sleep(timeout)

    def flush(self, timeout):
        return 0


def test_an_envelope_kafka_refuses_fails_only_the_requests_it_holds_events_of():
    async def scenario():
        producer = FakeProducer(refuse_over=1_500)
        delivery = KafkaDelivery("unused", batch_events=100, linger_s=0.05, max_pending=100,
                                 max_message_bytes=2_000, producer=producer)
        delivery.start()
        small = delivery.submit("t", "inference", "m", "1", [{"event_id": "s1"}, {"event_id": "s2"}])
        large = delivery.submit("t", "inference", "m", "1", [{"event_id": "big", "blob": "x" * 1_700}])
        other = delivery.submit("t", "inference", "m", "1", [{"event_id": "s3"}])
        results = await asyncio.gather(small, large, other, return_exceptions=True)
        assert results[0] is None and results[2] is None  # delivered, and answered so
        assert isinstance(results[1], DeliveryFailed) and "MSG_SIZE_TOO_LARGE" in str(results[1])
        assert (delivery.delivered, delivery.failed, delivery.pending) == (3, 1, 0)
        assert [e["event_id"] for v in producer.values for e in orjson.loads(v)["events"]] == ["s1", "s2", "s3"]
        delivery.close(0.1)

    asyncio.run(scenario())


def test_the_room_for_a_whole_request_is_checked_before_anything_is_queued():
    async def scenario():
        delivery = KafkaDelivery("unused", batch_events=100, linger_s=10, max_pending=3,
                                 max_message_bytes=2_000, producer=FakeProducer(refuse_over=2_000))
        delivery.start()
        with pytest.raises(Rejected) as exc:  # model a's 2 events fit, b's 2 more do not: neither is queued
            delivery.submit_all([("t", "inference", "a", "1", [{"event_id": "1"}, {"event_id": "2"}]),
                                 ("t", "inference", "b", "1", [{"event_id": "3"}, {"event_id": "4"}])])
        assert exc.value.reason == "kafka_unavailable" and "nothing of this request" in exc.value.message
        assert delivery.pending == 0
        futures = delivery.submit_all([("t", "inference", "a", "1", [{"event_id": "1"}]),
                                       ("t", "inference", "b", "1", [{"event_id": "3"}, {"event_id": "4"}])])
        assert delivery.pending == 3
        delivery.close(0.1)
        await asyncio.gather(*futures)
        assert delivery.pending == 0

    asyncio.run(scenario())


def test_the_producer_holds_no_message_larger_than_a_worker_reads():
    delivery = KafkaDelivery("127.0.0.1:1", batch_events=10, linger_s=0, max_pending=10, max_message_bytes=50_000)
    with pytest.raises(confluent_kafka.KafkaException, match="MSG_SIZE_TOO_LARGE|too large"):
        delivery._producer.produce("t", value=b"x" * 60_000, key=b"m")
    delivery._producer.produce("t", value=b"x" * 50_000, key=b"m" * 256)
    delivery.close(0.1)
