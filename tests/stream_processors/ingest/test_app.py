"""The HTTP service in-process, on a stand-in for the Kafka producer: answers, what is queued, what is held."""

import asyncio
import time

import orjson
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from stream_processors.ingest.app import build_app
from stream_processors.ingest.delivery import KafkaDelivery
from stream_processors.ingest.mapping import Mapping
from stream_processors.config import Settings

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


class HeldProducer:
    """Delivers at once while ``deliver`` is true; else holds the delivery reports until it is set again."""

    def __init__(self) -> None:
        self.deliver = True
        self.values: list[bytes] = []
        self.held: list = []

    def produce(self, topic, value, key, on_delivery):
        self.values.append(value)
        (on_delivery(None, None) if self.deliver else self.held.append(on_delivery))

    def poll(self, timeout):
        if self.deliver:
            while self.held:
                self.held.pop(0)(None, None)
        time.sleep(timeout)

    def flush(self, timeout):
        return len(self.held)

    def list_topics(self, timeout):
        return None


def serve(scenario, **changes):
    """Runs ``scenario(client, producer, registry)`` against a service built with these settings."""
    settings = Settings().replace(ingest_linger_s=0.001, **changes)
    producer = HeldProducer()
    delivery = KafkaDelivery("unused", batch_events=settings.ingest_batch_events, linger_s=settings.ingest_linger_s,
                             max_pending=settings.ingest_max_pending_events,
                             max_message_bytes=settings.max_message_bytes, producer=producer)
    registry = CollectorRegistry()

    async def run():
        client = TestClient(TestServer(build_app(settings, Mapping(), delivery, None, registry)))
        await client.start_server()
        try:
            await scenario(client, producer, registry)
        finally:
            producer.deliver = True
            await client.close()

    asyncio.run(run())


def metric(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def ce_headers(ce_id, half, isvc="income"):
    return {"ce-id": ce_id, "ce-type": REQUEST if half == "request" else RESPONSE, "ce-specversion": "1.0",
            "ce-source": "test", "ce-inferenceservicename": isvc, "Content-Type": "application/json"}


def event(model, eid):
    return {"model": model, "model_version": "1", "event_id": eid, "timestamp": 1.0, "features": {"x": 1.0},
            "prediction": 0}


def test_a_request_that_does_not_fit_whole_queues_nothing():
    async def scenario(client, producer, registry):
        producer.deliver = False
        reply = await client.post("/v1/events", data=orjson.dumps([event("a", "1"), event("a", "2"),
                                                                   event("b", "3"), event("b", "4")]))
        assert reply.status == 503 and (await reply.json())["reason"] == "kafka_unavailable"
        assert reply.headers["Retry-After"] == "5"
        await client.get("/metrics")
        assert metric(registry, "driftline_ingest_pending_events") == 0 and producer.values == []

    serve(scenario, ingest_max_pending_events=3)


def test_a_header_that_is_not_utf8_is_400_for_either_half_and_nothing_is_held():
    async def scenario(client, producer, registry):
        for half in ("request", "response"):
            headers = "".join(f"{k}: {v}\r\n" for k, v in ce_headers("x1", half).items()
                              if k != "ce-inferenceservicename")
            body = b'{"instances": [[1]]}' if half == "request" else b'{"predictions": [1]}'
            raw = (f"POST / HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
                   + headers).encode() + b"ce-inferenceservicename: inc\xffome\r\n\r\n" + body
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(raw)
            answer = await reader.read()
            writer.close()
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), answer
            assert orjson.loads(payload)["reason"] == "bad_cloudevent" and b"not UTF-8" in payload
        await client.get("/metrics")
        assert metric(registry, "driftline_ingest_waiting_cloudevents", half="request") == 0

    serve(scenario)


def test_after_a_kafka_timeout_a_resent_half_finds_its_partner_again():
    async def scenario(client, producer, registry):
        request, response = b'{"instances": [[1], [2]]}', b'{"predictions": [0, 1]}'
        assert (await client.post("/", data=request, headers=ce_headers("p1", "request"))).status == 202
        producer.deliver = False
        reply = await client.post("/", data=response, headers=ce_headers("p1", "response"))
        assert reply.status == 503 and (await reply.json())["reason"] == "kafka_timeout"
        producer.deliver = True
        reply = await client.post("/", data=response, headers=ce_headers("p1", "response"))  # the client retries
        assert (reply.status, await reply.json()) == (200, {"accepted": 2})
        await client.get("/metrics")
        assert metric(registry, "driftline_ingest_unpaired_cloudevents_total", half="request") == 0
        # the pair was queued twice (a retry after a timeout may duplicate, with the same event ids)
        ids = [e["event_id"] for v in producer.values for e in orjson.loads(v)["events"]]
        assert ids == ["p1-0", "p1-1", "p1-0", "p1-1"]

    serve(scenario, ingest_ack_timeout_s=0.3)


def test_a_resent_half_replaces_the_one_held_and_is_counted():
    async def scenario(client, producer, registry):
        for _ in range(3):
            reply = await client.post("/", data=b'{"instances": [[1]]}', headers=ce_headers("r1", "request"))
            assert reply.status == 202
        await client.get("/metrics")
        assert metric(registry, "driftline_ingest_unpaired_cloudevents_total", half="request") == 2
        assert metric(registry, "driftline_ingest_waiting_cloudevents", half="request") == 1

    serve(scenario)


def test_the_bytes_held_for_partners_are_bounded_and_evictions_counted():
    async def scenario(client, producer, registry):
        body = orjson.dumps({"instances": [["v" * 1_000]]})
        for k in range(5):
            reply = await client.post("/", data=body, headers=ce_headers(f"b{k}", "request"))
            assert reply.status == 202
        await client.get("/metrics")
        assert metric(registry, "driftline_ingest_waiting_cloudevent_bytes") == 2 * len(body)
        assert metric(registry, "driftline_ingest_waiting_cloudevents", half="request") == 2
        assert metric(registry, "driftline_ingest_unpaired_cloudevents_total", half="request") == 3
        # the newest halves are the ones kept
        reply = await client.post("/", data=b'{"predictions": [1]}', headers=ce_headers("b4", "response"))
        assert (reply.status, await reply.json()) == (200, {"accepted": 1})

    serve(scenario, ingest_max_unpaired_bytes=2_500)


def test_hostile_tensors_and_oversized_events_are_json_refusals_and_health_stays_quick():
    async def scenario(client, producer, registry):
        tensor = {"name": "t", "shape": [1] + [10**18] * 50_000, "datatype": "FP32", "data": [1.0]}
        started = time.perf_counter()
        reply = await client.post("/", data=orjson.dumps({"inputs": [tensor]}), headers=ce_headers("h", "request"))
        assert reply.status == 400 and (await reply.json())["reason"] == "bad_body"
        assert (await client.get("/healthz")).status == 200 and time.perf_counter() - started < 2
        big = {**event("m", "big"), "features": {"note": "n" * 1_100_000}}
        reply = await client.post("/v1/events", data=orjson.dumps([event("m", "small"), big]))
        assert reply.status == 413 and (await reply.json())["reason"] == "event_too_large"
        assert producer.values == []

    serve(scenario)
