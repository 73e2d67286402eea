"""The buffer of events waiting for Kafka is bounded, and envelopes respect the message size (no broker needed)."""

import asyncio

import orjson
import pytest

from stream_processors.ingest.delivery import KafkaDelivery
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


def test_envelopes_split_to_fit_the_message_size():
    delivery = KafkaDelivery("127.0.0.1:1", batch_events=1000, linger_s=0, max_pending=10_000,
                             max_message_bytes=2_000)
    events = [{"event_id": f"e{i}", "features": {"x": "v" * 50}} for i in range(100)]
    values = list(delivery._envelopes("m", "1", "inference", events))
    assert all(len(v) <= 2_000 for v in values) and len(values) > 1
    assert [e["event_id"] for v in values for e in orjson.loads(v)["events"]] == [e["event_id"] for e in events]
    delivery.close(0.1)
