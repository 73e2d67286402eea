import asyncio

import aiokafka
import pytest

from stream_processors.faust_app.tuning import limit_fetch_wait


def test_consumers_created_afterwards_long_poll_at_most_the_limit(monkeypatch):
    monkeypatch.setattr(aiokafka.AIOKafkaConsumer, "__init__", aiokafka.AIOKafkaConsumer.__init__)
    limit_fetch_wait(100)

    async def waits():
        capped = aiokafka.AIOKafkaConsumer(bootstrap_servers="localhost:1", fetch_max_wait_ms=1500)
        shorter = aiokafka.AIOKafkaConsumer(bootstrap_servers="localhost:1", fetch_max_wait_ms=20)
        return capped._fetch_max_wait_ms, shorter._fetch_max_wait_ms

    assert asyncio.run(waits()) == (100, 20)


def test_bad_limit():
    with pytest.raises(ValueError):
        limit_fetch_wait(0)
