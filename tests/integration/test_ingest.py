"""``driftline ingest`` on real Kafka and Redis: real HTTP requests, a running worker, numbers from numpy."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import pytest
from sklearn import metrics as sk

from producers.topics import ensure_topics

from .conftest import describe, read_topic, wait_until_applied
from .ingest_helpers import OwnKafka, http, start_ingest

pytestmark = pytest.mark.integration

MAPPING = """
models:
  income:
    inferenceservice: income-sklearn
    version: "2"
    input: input-0
    columns: [age, hours, edu]
    prediction: predict
    score: proba
"""
NUMERIC = ("age", "hours", "edu")


@pytest.fixture
def ingest_factory():
    """Starts ``driftline ingest`` processes and stops whichever are still running when the test ends."""
    started = []

    def start(*args, **kwargs):
        started.append(start_ingest(*args, **kwargs))
        return started[-1]

    yield start
    for ingest in started:
        ingest.stop()
CITIES = np.array(["Lyon", "Oslo", "Porto"])


def _v2_request(x: np.ndarray, city: list[str], member: list[bool]) -> dict:
    n = len(x)
    return {"id": "r", "inputs": [
        {"name": "input-0", "shape": [n, 3], "datatype": "FP64", "data": x.tolist()},  # nested: row-major
        {"name": "city", "shape": [n], "datatype": "BYTES", "data": city},
        {"name": "member", "shape": [n, 1], "datatype": "BOOL", "data": member}]}


def _v2_response(pred: np.ndarray, proba: np.ndarray) -> dict:
    n = len(pred)
    return {"model_name": "income-sklearn", "outputs": [
        {"name": "predict", "shape": [n], "datatype": "INT64", "data": pred.tolist()},
        {"name": "proba", "shape": [n, 1], "datatype": "FP32", "data": proba.ravel().tolist()}]}


def test_cloudevents_and_driftline_json_reach_the_state_and_labels_join(settings, worker_factory, ingest_factory,
                                                                       tmp_path):
    settings = settings.replace(performance_window=60)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING)
    worker = worker_factory(settings).start()
    ingest = ingest_factory(settings, tmp_path / "ingest.log", "--mapping", str(mapping))
    rng = np.random.default_rng(7)
    sent: list[dict] = []  # every event as the worker should see it, in order of sending

    def rows(n):
        x = np.column_stack([rng.integers(18, 80, n), rng.normal(40, 8, n).round(3), rng.normal(12, 3, n).round(4)])
        city = rng.choice(CITIES, n).tolist()
        member = (rng.random(n) < 0.3).tolist()
        pred = rng.integers(0, 2, n)
        proba = rng.random(n).round(5)
        return x.astype(float), city, member, pred, proba

    def record(ids, x, city, member, pred):
        for i, eid in enumerate(ids):
            sent.append({"event_id": eid, "features": dict(zip(NUMERIC, x[i])), "city": city[i],
                         "member": member[i], "prediction": int(pred[i])})

    # Open Inference Protocol bodies, binary then structured mode, request first then response first
    for k in range(40):
        n = 5
        x, city, member, pred, proba = rows(n)
        structured, request_first = k >= 20, k % 2 == 0
        halves = [("request", _v2_request(x, city, member)), ("response", _v2_response(pred, proba))]
        first, second = halves if request_first else halves[::-1]
        a = ingest.cloudevent(f"v2-{k}", first[0], first[1], "income-sklearn", structured)
        assert a.status == 202, a.body
        b = ingest.cloudevent(f"v2-{k}", second[0], second[1], "income-sklearn", structured,
                              path="/v1/cloudevents" if k % 3 else "/")
        assert (b.status, b.body) == (200, {"accepted": n}), b.body
        record([f"v2-{k}-{i}" for i in range(n)], x, city, member, pred)

    # KServe V1 bodies: object instances and object predictions; one row keeps the bare ce-id
    for k in range(30):
        n = 1 if k < 15 else 3
        x, city, member, pred, proba = rows(n)
        request = {"instances": [{**dict(zip(NUMERIC, x[i].tolist())), "city": city[i], "member": member[i]}
                                 for i in range(n)]}
        response = {"predictions": [{"predict": int(pred[i]), "proba": float(proba[i])} for i in range(n)]}
        structured = k % 2 == 1
        order = [("response", response), ("request", request)] if k % 4 < 2 else [("request", request),
                                                                                     ("response", response)]
        assert ingest.cloudevent(f"v1-{k}", *order[0], "income-sklearn", structured).status == 202
        reply = ingest.cloudevent(f"v1-{k}", *order[1], "income-sklearn", structured)
        assert (reply.status, reply.body) == (200, {"accepted": n}), reply.body
        record([f"v1-{k}"] if n == 1 else [f"v1-{k}-{i}" for i in range(n)], x, city, member, pred)

    # Driftline JSON: a list, one event, and an envelope
    def event(eid, x, city, member, pred, proba):
        return {"event_id": eid, "timestamp": time.time(), "prediction": int(pred), "score": float(proba),
                "features": {**dict(zip(NUMERIC, x.tolist())), "city": city, "member": member}}

    x, city, member, pred, proba = rows(40)
    ids = [f"js-{i}" for i in range(40)]
    docs = [{"model": "income", "model_version": "2", **event(ids[i], x[i], city[i], member[i], pred[i], proba[i])}
            for i in range(40)]
    assert ingest.post_json("/v1/events", docs[:29]).body == {"accepted": 29}
    assert ingest.post_json("/v1/events", docs[29]).body == {"accepted": 1}
    envelope = {"schema_version": 1, "kind": "inference", "model": "income", "model_version": "2",
                "events": [{k: v for k, v in d.items() if k not in ("model", "model_version")} for d in docs[30:]]}
    assert ingest.post_json("/v1/events", envelope).body == {"accepted": 10}
    record(ids, x, city, member, pred)

    wait_until_applied(settings, worker)
    status = describe(settings, "income", "2")
    assert status["events"] == len(sent) == 40 * 5 + 15 + 15 * 3 + 40
    for j, name in enumerate(NUMERIC):
        col = np.array([e["features"][name] for e in sent])
        f = status["features"][name]
        assert (f["count"], f["missing"]) == (col.size, 0)
        assert f["mean"] == pytest.approx(np.mean(col), rel=1e-9)
        assert f["std"] == pytest.approx(np.std(col, ddof=1), rel=1e-9)
        assert (f["min"], f["max"]) == (col.min(), col.max())
    cities, counts = np.unique([e["city"] for e in sent], return_counts=True)
    assert status["features"]["city"]["frequencies"] == dict(zip(cities.tolist(), counts.tolist()))
    assert status["features"]["member"]["count"] == len(sent)

    # labels arrive later, in an order of their own, and join their predictions
    order = rng.permutation(len(sent))
    truth = {e["event_id"]: int(rng.integers(0, 2)) for e in sent}
    labels = [{"model": "income", "event_id": sent[i]["event_id"], "label": truth[sent[i]["event_id"]],
               "timestamp": time.time()} for i in order]
    for start in range(0, len(labels), 100):
        reply = ingest.post_json("/v1/labels", labels[start:start + 100])
        assert reply.status == 200 and reply.body["accepted"] == len(labels[start:start + 100])
    wait_until_applied(settings, worker)
    windows = describe(settings, "income", "2")["performance"]["windows"]
    predicted = {e["event_id"]: e["prediction"] for e in sent}
    joined = [sent[i]["event_id"] for i in order]
    assert len(windows) == min(10, len(sent) // 60)
    first_kept = len(sent) // 60 - len(windows)
    for k, window in enumerate(windows, start=first_kept):
        chunk = joined[k * 60:(k + 1) * 60]
        assert window["accuracy"] == pytest.approx(
            sk.accuracy_score([truth[i] for i in chunk], [predicted[i] for i in chunk]), abs=1e-12)

    metrics = ingest.metrics()
    assert 'driftline_ingest_events_total{kind="inference"} 300.0' in metrics
    assert f'driftline_ingest_events_total{{kind="label"}} {float(len(sent))}' in metrics
    assert "driftline_ingest_unpaired_cloudevents_total{" not in metrics  # every half found its partner
    assert ingest.stop() == 0


def test_a_drifting_stream_posted_over_http_raises_the_drift_alert(settings, worker_factory, ingest_factory,
                                                                  tmp_path):
    shift_at, pairs, rows = 8000, 160, 100
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, pairs * rows)
    x[shift_at:] += 1.0
    y = rng.normal(5, 2, pairs * rows)
    pred = rng.integers(0, 2, pairs * rows)
    worker = worker_factory(settings).start()
    ingest = ingest_factory(settings, tmp_path / "ingest.log")

    def pair(k):
        part = slice(k * rows, (k + 1) * rows)
        # MLServer's pandas-codec layout, no mapping: each [n] or [n, 1] tensor is a feature
        req = {"inputs": [{"name": "x", "shape": [rows], "datatype": "FP64", "data": x[part].tolist()},
                          {"name": "y", "shape": [rows, 1], "datatype": "FP64", "data": y[part].tolist()}]}
        res = {"outputs": [{"name": "label", "shape": [rows], "datatype": "INT64", "data": pred[part].tolist()}]}
        assert ingest.cloudevent(f"p{k:04d}", "request", req, "sensor").status == 202
        return ingest.cloudevent(f"p{k:04d}", "response", res, "sensor").status

    for start in range(0, pairs, 20):  # in order of blocks, several pairs at a time within a block
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(pair, range(start, start + 20))) == {200}
        time.sleep(0.05)
    wait_until_applied(settings, worker)
    status = describe(settings, "sensor", "1")
    assert status["events"] == pairs * rows
    assert status["features"]["x"]["mean"] == pytest.approx(np.mean(x), rel=1e-9)
    alerts = [a for a in read_topic(settings, settings.control_topic) if a["type"] == "drift"]
    assert {a["feature"] for a in alerts} == {"x"}, alerts
    first = min(alerts, key=lambda a: a["evidence"]["last_event_id"])
    k, row = first["evidence"]["last_event_id"].removeprefix("p").split("-")
    assert shift_at <= int(k) * rows + int(row) <= shift_at + 1000
    ingest.stop()


TOKEN = "s3cret-token-of-the-test"


def test_every_rejection_is_a_status_and_a_json_body(settings, ingest_factory, tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('strict = true\n[models.income]\ninferenceservice = "income-sklearn"\n'
                       'columns = ["a", "b"]\n')
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    s = settings.replace(ingest_token_file=str(token_file), ingest_max_rows=50, ingest_max_body_bytes=65536,
                         ingest_pair_wait_s=1.0)
    ingest = ingest_factory(s, tmp_path / "ingest.log", "--mapping", str(mapping))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = {"model": "income", "model_version": "1", "event_id": "e", "timestamp": 1, "features": {"a": 1},
            "prediction": 0}

    def check(reply, status, reason, words):
        assert reply.status == status, reply.body
        assert reply.body["reason"] == reason and words in reply.body["error"], reply.body

    check(ingest.post_json("/v1/events", good), 401, "unauthorized", "bearer token")
    check(ingest.post_json("/v1/events", good, {"Authorization": "Bearer nope"}), 401, "unauthorized", "bearer")
    assert ingest.post_json("/v1/events", good, auth).body == {"accepted": 1}
    check(ingest.post_json("/v1/events", {**good, "prediction": None}, auth), 400, "invalid_event",
          "missing field 'prediction'")
    check(http("POST", ingest.url + "/v1/events", b"{nope", auth), 400, "bad_json", "not JSON")
    check(http("POST", ingest.url + "/v1/labels", b'"text"', auth), 400, "bad_body", "JSON str")
    check(http("POST", ingest.url + "/", b"{}", {"Content-Type": "application/json", **auth}), 400,
          "bad_cloudevent", "ce-*")
    check(ingest.cloudevent("c1", "request", {"instances": [[1, 2, 3]]}, "income-sklearn", headers=auth), 400,
          "bad_body", "3 values but the mapping names 2")
    check(ingest.cloudevent("c2", "request", {"inputs": [{"name": "t", "shape": [1], "datatype": "FP32",
                                                          "data": ["x"]}]}, "income-sklearn", headers=auth),
          400, "bad_body", "datatype FP32")
    assert ingest.cloudevent("c3", "request", {"instances": [[1, 2], [3, 4]]}, "income-sklearn",
                             headers=auth).status == 202
    check(ingest.cloudevent("c3", "response", {"predictions": [1]}, "income-sklearn", headers=auth), 400,
          "row_mismatch", "the request has 2 rows, the response 1")
    check(ingest.cloudevent("c4", "request", {"instances": [[1, 2]]}, "fraud", headers=auth), 422,
          "unknown_model", "'fraud' is not in the mapping file")
    check(ingest.post_json("/v1/events", [good, {**good, "model": "fraud"}], auth), 422, "unknown_model",
          "['fraud'] are not in the mapping file")
    check(ingest.post_json("/v1/events", [good] * 51, auth), 413, "too_many_rows", "51 events")
    check(ingest.cloudevent("c5", "request", {"instances": [[1, 2]] * 51}, "income-sklearn", headers=auth), 413,
          "too_many_rows", "51 rows")
    check(ingest.post_json("/v1/events", {**good, "features": {"a": "x" * 70000}}, auth), 413, "too_large",
          "65536")
    check(http("POST", ingest.url + "/", b"[]", {"Content-Type": "application/cloudevents-batch+json", **auth}),
          415, "unsupported_media_type", "batched")
    check(http("GET", ingest.url + "/nowhere", headers=auth), 404, "http", "Not Found")
    # an unpaired half is counted once its wait is over
    assert ingest.cloudevent("lonely", "response", {"predictions": [1]}, "income-sklearn", headers=auth).status == 202
    assert http("GET", ingest.url + "/healthz").status == 200  # health and metrics need no token
    counted = 'driftline_ingest_unpaired_cloudevents_total{half="response"} 1.0'
    deadline = time.monotonic() + 30  # the pair wait is 1 s; housekeeping finds it expired within a few more
    while counted not in (metrics := ingest.metrics()):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.2)
    for reason, n in (("unauthorized", 2), ("invalid_event", 1), ("bad_json", 1), ("bad_body", 3),
                      ("bad_cloudevent", 1), ("row_mismatch", 1), ("unknown_model", 2), ("too_many_rows", 2),
                      ("too_large", 1), ("unsupported_media_type", 1)):
        assert f'driftline_ingest_rejections_total{{reason="{reason}"}} {float(n)}' in metrics, reason
    # c3's halves were consumed by their pair (refused as a whole); refused halves are never held
    assert 'driftline_ingest_unpaired_cloudevents_total{half="request"}' not in metrics
    assert ingest.stop() == 0
    assert TOKEN not in ingest.log() and TOKEN not in metrics


def test_tls_and_a_token_from_the_environment(settings, ingest_factory, tmp_path):
    import ssl
    import subprocess
    import urllib.request

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    s = settings.replace(ingest_token=TOKEN, ingest_tls_cert=str(cert), ingest_tls_key=str(key))
    ingest = ingest_factory(s, tmp_path / "ingest.log", ready=False, scheme="https")
    context = ssl.create_default_context(cafile=str(cert))
    event = {"model": "m", "model_version": "1", "event_id": "t1", "timestamp": 1, "features": {"a": 1},
             "prediction": 0}
    req = urllib.request.Request(ingest.url + "/v1/events", data=orjson.dumps(event), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, context=context, timeout=30) as resp:
        assert resp.status == 200 and orjson.loads(resp.read()) == {"accepted": 1}
    [message] = read_topic(s, s.inference_topic)
    assert message["events"][0]["event_id"] == "t1"
    with pytest.raises(OSError):  # plain HTTP is not served on the TLS port
        http("GET", ingest.url.replace("https", "http") + "/healthz")
    assert TOKEN not in ingest.log()


def test_503_while_kafka_is_down_then_full_recovery_nothing_acknowledged_is_lost(settings, ingest_factory,
                                                                                tmp_path):
    kafka = OwnKafka(tmp_path / "kafka")
    kafka.start()
    try:
        s = settings.replace(kafka_bootstrap=kafka.bootstrap, ingest_max_pending_events=200,
                             ingest_ack_timeout_s=2.0)
        ensure_topics(s.kafka.bootstrap, [s.inference_topic, s.label_topic], s.topic_partitions)
        ingest = ingest_factory(s, tmp_path / "ingest.log")
        acked: set[str] = set()
        refused: dict[str, int] = {}
        timed_out: set[str] = set()

        def post(k: int, n: int):
            events = [{"model": "m", "model_version": "1", "event_id": f"b{k}-{i}", "timestamp": time.time(),
                       "features": {"v": float(k * 1000 + i)}, "prediction": i % 2} for i in range(n)]
            reply = ingest.post_json("/v1/events", events)
            ids = {e["event_id"] for e in events}
            if reply.status == 200:
                acked.update(ids)
            else:
                assert reply.status == 503 and reply.headers.get("Retry-After") == "5", reply
                refused[reply.body["reason"]] = refused.get(reply.body["reason"], 0) + 1
                if reply.body["reason"] == "kafka_timeout":
                    timed_out.update(ids)
            return reply.status

        assert [post(k, 10) for k in range(5)] == [200] * 5
        kafka.stop()
        deadline = time.monotonic() + 30
        while http("GET", ingest.url + "/readyz").status != 503:
            assert time.monotonic() < deadline, "readyz still ready with Kafka stopped"
            time.sleep(0.5)
        statuses = [post(k, 50) for k in range(5, 12)]
        assert set(statuses) == {503}
        assert refused.get("kafka_timeout", 0) == 4  # 4 x 50 events fill the buffer of 200 ...
        assert refused.get("kafka_unavailable", 0) == 3  # ... after which nothing more is queued
        kafka.start()
        deadline = time.monotonic() + 90
        while http("GET", ingest.url + "/readyz").status != 200:
            assert time.monotonic() < deadline, "readyz did not recover"
            time.sleep(0.5)
        assert [post(k, 10) for k in range(12, 17)] == [200] * 5
        assert ingest.stop() == 0
        delivered = [e["event_id"] for m in read_topic(s, s.inference_topic) for e in m["events"]]
        assert acked <= set(delivered) and len(acked) == 100
        # the events that timed out stayed queued and arrived too, exactly once (idempotent producer)
        assert timed_out <= set(delivered) and len(delivered) == len(set(delivered)) == 300
    finally:
        kafka.stop()


def test_events_a_worker_would_dead_letter_are_413_and_envelopes_fit_the_worker(settings, ingest_factory, tmp_path):
    from producers.events import decode_message

    ingest = ingest_factory(settings, tmp_path / "ingest.log")
    limit = settings.max_message_bytes

    def event(eid, chars):
        return {"model": "big", "model_version": "1", "event_id": eid, "timestamp": time.time(),
                "features": {"x": 1.0, "note": "n" * chars}, "prediction": 0}

    # the reviewer's case: a 1.03 MiB and a 1.5 MiB event, and another client's small event beside them
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda doc: ingest.post_json("/v1/events", doc),
                                [event("a", int(1.03 * limit)), event("b", int(1.5 * limit)), event("small", 10)]))
    for reply in replies[:2]:
        assert (reply.status, reply.body["reason"]) == (413, "event_too_large"), reply.body
        assert f"at most {limit} bytes" in reply.body["error"]
    assert (replies[2].status, replies[2].body) == (200, {"accepted": 1})
    # events that fit alone are cut into envelopes a worker reads, however many share a request
    many = [event(f"m{i}", limit // 3) for i in range(7)]
    assert ingest.post_json("/v1/events", many).body == {"accepted": 7}
    messages = read_topic(settings, settings.inference_topic)
    assert sorted(e["event_id"] for m in messages for e in m["events"]) == sorted(["small"] + [f"m{i}"
                                                                                        for i in range(7)])
    for m in messages:
        raw = orjson.dumps(m)  # the bytes produced: orjson wrote them and reads them back unchanged
        assert len(raw) <= limit and not decode_message(raw, limit).rejections
    assert len(messages) >= 1 + 3  # 7 events of a third of the limit need at least 3 envelopes
    assert 'driftline_ingest_rejections_total{reason="event_too_large"} 2.0' in ingest.metrics()
    assert ingest.stop() == 0
