"""Throughput, latency and memory of one Driftline worker on real Kafka and Redis, each beside a floor
measured in the same run.

    python benchmarks/throughput.py                  # every section: about 8 minutes on 2 cores, 5 of
                                                     # them the memory section's 10M events
    python benchmarks/throughput.py --quick          # every section, small: about a minute
    python benchmarks/throughput.py --envelopes --single --latency      # some sections (about 2.5 minutes)
    python benchmarks/throughput.py --envelopes --single --pairs 3      # each ratio the median of 3 pairs

Sections (each starts its own `driftline worker` on topics, app id and Redis keys of its own, removed after):

--envelopes   16 car-loan-like models (7 features, prediction, score) in batch envelopes of 500 events, on
              a topic filled beforehand: the worker's events/s from its first saved batch to its last,
              beside `json.loads` of the same messages (the floor; target ratio >= 0.4) and `orjson.loads`
              (what the worker decodes with), each timed once the topic is filled, just before the worker
              starts, and again as soon as it has drained it (the floor is the rate of the two passes
              together: the harmonic mean of their rates); and the most memory the worker held (VmHWM),
              since the whole topic is a backlog when it starts.
--single      the same models, one event per Kafka message: the worker's events/s beside a faust agent
              that only counts the same messages (benchmarks/counting_agent.py: take_events(1000),
              concurrency 1, the worker's broker settings and long-poll cap); target ratio >= 0.6.
--latency     events logged through the SDK (InferenceLogger, one per model, --linger) at half the
              envelope rate measured in this run (with --pairs, half the median of the drains; or
              --latency-rate), with half the models drifting at known events; p50/p95/p99 seconds from
              each alert's evidence.last_event_id being logged to the alert being read from the control
              topic (firings and retrain triggers); target p99 <= 1 s.
              Beside it, the same from the Kafka timestamp of the envelope that carried the event, which
              leaves out the time the event waited in the SDK's buffer (up to --linger).
              And where the rest goes: the worker's batches in that time (from its /metrics), their mean
              duration (process, publish, save) and the share of the time the worker was busy with them; a
              worker busy most of the time queues, and latency then follows its backlog, not its settings.
--memory      envelopes streamed without pause into a Redis of the run's own (deploy/stack.sh): the
              worker's RSS (VmRSS) and Redis used_memory when --memory-events have been applied; growth
              from the first (the warm-up) to the last; flat means <= 10%. Predictions are not kept for
              the label join unless --keep-predictions (kept ones take memory per event until their TTL).
--model-bytes one model of 20 features (16 numeric, 4 categorical): MEMORY USAGE of the Redis keys naming
              it, at two points past every warm-up, to show the steady state.

At the end, a table of every figure and the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import confluent_kafka
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rig import REPO, BenchRun, PrivateRedis, bulk_producer, end_offsets, machine, redis_memory_of  # noqa: E402
from workload import envelopes, loan_events, loan_features, loan_rows, single_messages, wide_events  # noqa: E402

from producers import kafka  # noqa: E402
from producers.sdk import InferenceLogger  # noqa: E402

MODELS = 16
ENVELOPE = 500
LATENCY_WARM_UP = 6000


def parse_count(text: str) -> int:
    """``200000``, ``200k``, ``0.2M`` or ``10M``."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def loan_models(n: int = MODELS) -> list[str]:
    return [f"loan{k:02d}" for k in range(n)]


def loan_workload(events: int, seed: int = 1) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    return {m: loan_events(m, events // MODELS, rng) for m in loan_models()}


def decode_floors(messages: list[tuple[bytes, bytes]], events: int, json_last: bool = False) -> tuple[float, float]:
    """(json.loads, orjson.loads) events/s over the same message values: decoding alone. ``json_last`` times
    ``orjson.loads`` first (for a pass just before the worker: ``json.loads``, the floor, next to it)."""
    rates = {}
    for loads in ((orjson.loads, json.loads) if json_last else (json.loads, orjson.loads)):
        started = time.perf_counter()
        decoded = sum(len(loads(value).get("events", (None,))) for _, value in messages)
        rates[loads] = events / (time.perf_counter() - started)
        assert decoded == events
    return rates[json.loads], rates[orjson.loads]


def bracketed(before: float, after: float) -> float:
    """The floor of a pair: the rate of the two passes together (the same events each, so their total events
    over their total time), one pass just before the worker started and one just after it drained the topic. The
    machine's speed drifts within minutes (one pass of ``json.loads`` here ranges over a factor of two in an
    hour); a floor on both sides of the worker shares more of its conditions than one taken only before it.

    >>> round(bracketed(200_000, 400_000))
    266667
    """
    return 2 / (1 / before + 1 / after)


def worker_drain(messages: list[tuple[bytes, bytes]], events: int, name: str, timeout: float,
                 around=None, **settings: object) -> tuple[float, int]:
    """(events/s, peak RSS bytes) of one worker draining ``messages``, filled beforehand: the whole topic is a
    backlog when it starts. ``around(before: bool)``, if given, is called once the topic is filled, just before
    the worker starts, and again as soon as it has drained the topic (before it is stopped and the run's topics
    and keys removed)."""
    with BenchRun(name) as run:
        run.fill(messages)
        if around is not None:
            around(True)
        worker = run.start_worker(**settings)
        rate = run.drain_rate(len(messages), events / len(messages), timeout)
        if around is not None:
            around(False)
        return rate, worker.peak_rss_bytes()


def _median_pair(pairs: list[dict]) -> dict:
    """The pair (worker rate beside its floor, measured one after the other) whose ratio is the median, with the
    ratios of all pairs: on a shared machine the floor moves between runs, the ratio of a pair less so. Of an
    even number, the lower of the two middle ones."""
    ordered = sorted(pairs, key=lambda p: p["ratio"])
    return {**ordered[(len(ordered) - 1) // 2], "ratios": [p["ratio"] for p in pairs]}


def median_drain(pairs: list[dict]) -> float:
    """The median of the pairs' own worker rates (of an even number, the lower middle one, as ``_median_pair``),
    for the latency section's half load: the pair with the median ratio may hold the fastest drain of all, which
    says little of what the worker sustains."""
    return sorted(p["worker"] for p in pairs)[(len(pairs) - 1) // 2]


def envelope_section(args, results: dict) -> None:
    events = args.envelope_events // MODELS * MODELS
    messages = envelopes(loan_workload(events), ENVELOPE)
    backlog = sum(len(value) for _, value in messages)
    pairs = []
    for _ in range(args.pairs):
        passes: dict[bool, tuple[float, float]] = {}

        def floor_pass(before: bool) -> None:
            passes[before] = decode_floors(messages, events, json_last=before)

        rate, peak_rss = worker_drain(messages, events, "envelopes", args.timeout, around=floor_pass)
        before, after = passes[True], passes[False]
        floor_json, floor_orjson = bracketed(before[0], after[0]), bracketed(before[1], after[1])
        pairs.append({"events": events, "worker": rate, "json": floor_json, "orjson": floor_orjson,
                      "ratio": rate / floor_json, "peak_rss": peak_rss, "backlog": backlog})
        print(f"envelopes of {ENVELOPE}: {events:,} events, {MODELS} models: worker {rate:,.0f} events/s; floor "
              f"json.loads {floor_json:,.0f}/s ({before[0]:,.0f} before the worker, {after[0]:,.0f} after; "
              f"orjson.loads {floor_orjson:,.0f}/s); worker/json.loads {rate / floor_json:.3f} (target >= 0.4); "
              f"the worker's peak RSS {peak_rss / 2**20:,.0f} MiB behind a backlog of {backlog / 2**20:,.0f} MiB",
              flush=True)
    results["envelopes"] = {**_median_pair(pairs), "median_drain": median_drain(pairs)}


def counting_floor(run: BenchRun, messages: int, timeout: float) -> float:
    group = f"{run.app_id}-floor"
    run.groups.append(group)
    result = run.logs / "floor.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "counting_agent.py"), "--group", group,
                           "--expect", str(messages), "--result", str(result)],
                          env=run.env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if not result.exists():
        raise RuntimeError(f"the counting agent failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(json.loads(result.read_text())["rate"])


def single_section(args, results: dict) -> None:
    events = args.single_events // MODELS * MODELS
    messages = single_messages(loan_workload(events, seed=2))
    pairs = []
    for _ in range(args.pairs):
        with BenchRun("single") as run:
            run.fill(messages)
            floor = counting_floor(run, len(messages), args.timeout)
            run.start_worker()
            rate = run.drain_rate(len(messages), 1.0, args.timeout)
        pairs.append({"events": events, "worker": rate, "floor": floor, "ratio": rate / floor})
        print(f"one event per message: {events:,} messages, {MODELS} models: worker {rate:,.0f} events/s; floor "
              f"(counting-only faust agent) {floor:,.0f}/s; worker/floor {rate / floor:.3f} (target >= 0.6)",
              flush=True)
    results["single"] = _median_pair(pairs)


class ControlReader:
    """Reads the control topic in a thread, noting when each message became readable."""

    def __init__(self, run: BenchRun) -> None:
        group = f"{run.app_id}-alerts"
        run.groups.append(group)
        self._consumer = kafka.consumer(run.kafka, {"group.id": group, "auto.offset.reset": "earliest",
                                                    "fetch.wait.max.ms": 10})
        self._consumer.subscribe([run.control_topic])
        self.received: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.05)
            if self._consumer.assignment():
                self._assigned.set()
            if msg is not None and not msg.error():
                self.received.append((time.time(), msg.value()))
        self._consumer.close()

    def wait_assigned(self, timeout: float = 60) -> None:
        if not self._assigned.wait(timeout):
            raise RuntimeError("the control topic reader got no partitions")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def latency_section(args, results: dict) -> None:
    if args.latency_rate:
        rate = args.latency_rate
    else:
        if "envelopes" not in results:
            envelope_section(args, results)
        rate = results["envelopes"]["median_drain"] / 2
    n_models = args.latency_models
    per_model = args.latency_events // n_models
    models = loan_models(n_models)
    drifting = n_models // 2
    # drifts start once every self-baseline is formed (5,000 events with the default settings), one model
    # after another, the last 1,500 events before the end
    if per_model < LATENCY_WARM_UP + 2000:
        raise SystemExit(f"--latency-events must be at least {n_models * (LATENCY_WARM_UP + 2000):,}")
    drift_at = {k: LATENCY_WARM_UP + k * (per_model - LATENCY_WARM_UP - 1500) // drifting for k in range(drifting)}
    rng = np.random.default_rng(3)
    rows = [loan_rows(per_model, rng, drift_at.get(k)) for k in range(n_models)]
    logged = np.zeros((n_models, per_model))
    with BenchRun("latency") as run:
        worker = run.start_worker()
        worker.wait_for_metrics()
        reader = ControlReader(run)
        deadline = time.monotonic() + 60
        while run.group_members() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not join its group:\n{worker.log_tail()}")
            time.sleep(0.2)
        reader.wait_assigned()
        loggers = [InferenceLogger(run.kafka, m, "1", topic=run.inference_topic, linger_s=args.linger)
                   for m in models]
        batches_before = worker.batch_seconds()
        started = time.monotonic()
        i = 0
        while i < per_model:
            due = min(per_model, int((time.monotonic() - started) * rate / n_models) + 1)
            while i < due:
                for k, log in enumerate(loggers):
                    values, home, score = rows[k]
                    now = time.time()
                    logged[k, i] = now
                    log.log(f"{models[k]}-{i}", loan_features(values[i], home[i]), int(score[i] > 0.5), score[i],
                            timestamp=now)
                i += 1
            time.sleep(0.002)
        produced_s = time.monotonic() - started
        for log in loggers:
            log.close()
        messages = sum(end_offsets(run.kafka, run.inference_topic).values())
        run.wait_applied(messages, args.timeout)
        batches = [after - before for after, before in zip(worker.batch_seconds(), batches_before)]
        time.sleep(1.0)  # the last alerts of the last batch
        reader.stop()
        alerts = []
        for received_at, value in reader.received:
            alert = orjson.loads(value)
            if alert.get("status") != "resolved":
                alerts.append((received_at, str((alert.get("evidence") or {}).get("last_event_id", "")),
                               alert.get("type")))
        sent_at = kafka_send_times(run, {event_id for _, event_id, _ in alerts})
    index = {m: k for k, m in enumerate(models)}
    from_log, from_kafka, kinds = [], [], {}
    for received_at, event_id, kind in alerts:
        model, _, i = event_id.rpartition("-")
        if model in index and i.isdigit() and event_id in sent_at:
            from_log.append(received_at - logged[index[model], int(i)])
            from_kafka.append(received_at - sent_at[event_id])
            kinds[kind] = kinds.get(kind, 0) + 1
    if not from_log:
        raise RuntimeError(f"none of the {len(reader.received)} control messages named an event of the run")
    p50, p95, p99 = np.percentile(from_log, [50, 95, 99])
    k50, k95, k99 = np.percentile(from_kafka, [50, 95, 99])
    achieved = per_model * n_models / produced_s
    results["latency"] = {"rate": achieved, "p50": p50, "p95": p95, "p99": p99, "alerts": len(from_log),
                          "max": max(from_log), "kafka": (k50, k95, k99), "batches": batches[0],
                          "batch_s": batches[1] / max(1.0, batches[0]), "busy": batches[1] / produced_s}
    print(f"latency, logged at {achieved:,.0f} events/s (half of {2 * rate:,.0f}), {drifting} of {n_models} models "
          f"drifting, SDK linger {args.linger}s ({per_model * n_models / messages:.0f} events per message): "
          f"{len(from_log)} alerts ({', '.join(f'{n} {t}' for t, n in sorted(kinds.items()))}); from log() to "
          f"readable: p50 {p50:.3f}s p95 {p95:.3f}s p99 {p99:.3f}s max {max(from_log):.3f}s (target p99 <= 1 s); "
          f"from the envelope's Kafka timestamp (the SDK's buffering left out): p50 {k50:.3f}s p95 {k95:.3f}s "
          f"p99 {k99:.3f}s; the worker: {batches[0]:,.0f} batches of {results['latency']['batch_s'] * 1e3:.0f} ms "
          f"on average (process, publish, save), busy {results['latency']['busy']:.0%} of the time", flush=True)


def kafka_send_times(run: BenchRun, event_ids: set[str]) -> dict[str, float]:
    """When the SDK handed each of ``event_ids`` to Kafka: its envelope's timestamp (CreateTime), read back."""
    ends = end_offsets(run.kafka, run.inference_topic)
    consumer = kafka.consumer(run.kafka, {"group.id": f"{run.app_id}-probe", "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(run.inference_topic, p, confluent_kafka.OFFSET_BEGINNING)
                     for p, end in ends.items() if end > 0])
    left = {p: end for p, end in ends.items() if end > 0}
    found: dict[str, float] = {}
    deadline = time.monotonic() + 120
    try:
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            for event in orjson.loads(msg.value())["events"]:
                if event["event_id"] in event_ids:
                    found[event["event_id"]] = msg.timestamp()[1] / 1000
            if msg.offset() + 1 >= left.get(msg.partition(), 0):
                left.pop(msg.partition(), None)
    finally:
        consumer.close()
    return found


def memory_templates(models: list[str], per_model: int = 4) -> list[tuple[bytes, list[bytes]]]:
    """Envelopes whose event ids hold a placeholder, so each message sent can have ids of its own cheaply."""
    rng = np.random.default_rng(4)
    out = []
    for m in models:
        bodies = []
        for t in range(per_model):
            events = loan_events(m, ENVELOPE, rng)
            for j, e in enumerate(events):
                e["event_id"] = f"{m}-@@@@@@@@@@-{j:03d}"
            bodies.append(envelopes({m: events}, ENVELOPE)[0][1])
        out.append((m.encode(), bodies))
    return out


def memory_section(args, results: dict) -> None:
    checkpoints = sorted(parse_count(c) for c in args.memory_events.split(","))
    total = checkpoints[-1] // ENVELOPE
    templates = memory_templates(loan_models())
    rows = []
    with PrivateRedis() as private, \
            BenchRun("memory", redis_url=private.url,
                     topic_config={"retention.bytes": str(256 * 2**20), "segment.bytes": str(32 * 2**20)}) as run:
        worker = run.start_worker(keep_predictions=args.keep_predictions)
        producer = bulk_producer(run.kafka)
        sent = 0
        started = time.monotonic()
        deadline = started + args.memory_timeout
        baseline_redis = private.used_memory()
        for checkpoint in checkpoints:
            want = checkpoint // ENVELOPE
            while (done := run.applied()) < want:
                if time.monotonic() > deadline or not worker.running():
                    raise RuntimeError(f"memory run: {done * ENVELOPE:,} events applied in "
                                       f"{time.monotonic() - started:.0f}s\n{worker.log_tail()}")
                # keep the worker fed, at most 400 messages (200k events) ahead of it
                while sent < total and sent - done < 400:
                    key, bodies = templates[sent % len(templates)]
                    body = bodies[(sent // len(templates)) % len(bodies)].replace(b"@@@@@@@@@@", b"%010d" % sent)
                    producer.produce(run.inference_topic, key=key, value=body)
                    sent += 1
                producer.poll(0)
                time.sleep(0.01)
            rows.append((checkpoint, worker.rss_bytes(), private.used_memory(), time.monotonic() - started))
            print(f"  memory at {checkpoint:>12,} events: worker RSS {rows[-1][1] / 2**20:8.1f} MiB, Redis "
                  f"used_memory {rows[-1][2] / 2**20:8.1f} MiB (empty: {baseline_redis / 2**20:.1f}), "
                  f"{rows[-1][3]:.0f}s", flush=True)
        producer.flush(30)
    first, last = rows[0], rows[-1]
    rss_growth = 100 * (last[1] - first[1]) / first[1]
    redis_growth = 100 * (last[2] - first[2]) / first[2]
    results["memory"] = {"rows": rows, "rss_growth": rss_growth, "redis_growth": redis_growth,
                         "keep_predictions": args.keep_predictions}
    print(f"memory: from {first[0]:,} to {last[0]:,} events (predictions "
          f"{'kept' if args.keep_predictions else 'not kept'}), worker RSS {rss_growth:+.1f}%, Redis "
          f"{redis_growth:+.1f}% (flat: within 10%)", flush=True)


def model_bytes_section(args, results: dict) -> None:
    rng = np.random.default_rng(5)
    model = "wide20"
    half = args.model_bytes_events // 2
    first = envelopes({model: wide_events(model, half, 20, rng)}, ENVELOPE)
    second = envelopes({model: [dict(e, event_id=f"{model}-{half + i}")
                                for i, e in enumerate(wide_events(model, half, 20, rng))]}, ENVELOPE)
    sizes = []
    with BenchRun("model-bytes") as run:
        run.start_worker(keep_predictions=False)
        for n, messages in ((half, first), (2 * half, second)):
            run.fill(messages)
            run.wait_applied(len(first) if n == half else len(first) + len(second), args.timeout)
            size, keys = redis_memory_of(run.redis_url, f"*{run.app_id}*{model}*")
            sizes.append((n, size, keys))
    results["model_bytes"] = sizes
    print("Redis bytes of one model version of 20 features (16 numeric, 4 categorical), predictions not kept: "
          + "; ".join(f"after {n:,} events {size:,} B in {keys} keys" for n, size, keys in sizes), flush=True)


def _of_pairs(r: dict) -> str:
    ratios = r["ratios"]
    listed = ", ".join(f"{x:.3f}" for x in ratios)
    return "" if len(ratios) < 2 else f"  (median of {len(ratios)} pairs: {listed})"


def summary(results: dict) -> None:
    print("\nsummary")
    print(f"{'figure':<52}{'Driftline':>14}{'floor':>14}{'ratio':>8}  target")
    if "envelopes" in results:
        r = results["envelopes"]
        print(f"{'envelopes of 500, events/s (floor: json.loads)':<52}{r['worker']:>14,.0f}{r['json']:>14,.0f}"
              f"{r['worker'] / r['json']:>8.3f}  >= 0.4{_of_pairs(r)}")
        print(f"{'  peak worker RSS, MiB, behind a backlog of (MiB)':<52}{r['peak_rss'] / 2**20:>14,.0f}"
              f"{r['backlog'] / 2**20:>14,.0f}")
    if "single" in results:
        r = results["single"]
        print(f"{'one event per message, events/s (floor: counting)':<52}{r['worker']:>14,.0f}{r['floor']:>14,.0f}"
              f"{r['worker'] / r['floor']:>8.3f}  >= 0.6{_of_pairs(r)}")
    if "latency" in results:
        r = results["latency"]
        label = f"latency at {r['rate']:,.0f} ev/s, p50/p95/p99 s"
        print(f"{label:<52}{r['p50']:>6.3f}/{r['p95']:.3f}/{r['p99']:.3f}{'':>16}  p99 <= 1")
        print(f"{'  the same from Kafka (SDK buffering left out)':<52}{'/'.join(f'{x:.3f}' for x in r['kafka']):>20}")
        print(f"{'  worker: mean batch s, busy':<52}{r['batch_s']:>9.3f}, {r['busy']:>7.0%}")
    if "memory" in results:
        r = results["memory"]
        span = f"{r['rows'][0][0] / 1e6:g}M -> {r['rows'][-1][0] / 1e6:g}M events"
        print(f"{'worker RSS growth, ' + span:<52}{r['rss_growth']:>+13.1f}%{'':>22}  <= 10%")
        print(f"{'Redis used_memory growth, ' + span:<52}{r['redis_growth']:>+13.1f}%{'':>22}  <= 10%")
    if "model_bytes" in results:
        n, size, _ = results["model_bytes"][-1]
        print(f"{'Redis bytes per 20-feature model version':<52}{size:>14,}")
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (about a minute)")
    for section in ("envelopes", "single", "latency", "memory", "model-bytes"):
        parser.add_argument(f"--{section}", action="store_true", help=f"run the {section} section (default: all)")
    parser.add_argument("--envelope-events", type=parse_count, help="default 400k (quick: 40k)")
    parser.add_argument("--single-events", type=parse_count, help="default 100k (quick: 5k): the worker's takes "
                                                           "hold up to 10,000, and its rate is timed from the end of "
                                                           "its first, so it needs several")
    parser.add_argument("--latency-events", type=parse_count, help="default 320k (quick: 36k)")
    parser.add_argument("--latency-models", type=int, help="models logging, half of them drifting; default 16 "
                                                           "(quick: 4)")
    parser.add_argument("--latency-rate", type=float,
                        help="events/s to log at (default: half the envelope rate; with --pairs, of the median drain)")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="the SDK's linger_s in the latency section (default 0.5, the SDK's own)")
    parser.add_argument("--memory-events", help="checkpoints, default 1M,5M,10M (about 5 minutes at 35k events/s; "
                                                "quick: 50k,100k,200k)")
    parser.add_argument("--keep-predictions", action="store_true", help="memory section: keep predictions")
    parser.add_argument("--memory-timeout", type=float, default=3600)
    parser.add_argument("--model-bytes-events", type=parse_count, help="default 40k (quick: 16k)")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for a worker to drain")
    parser.add_argument("--pairs", type=int, default=1,
                        help="envelopes and single: measure floor and worker this many times, one after the other, "
                             "and report the pair whose ratio is the median (default 1)")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    defaults = {"envelope_events": (400_000, 40_000), "single_events": (100_000, 5_000),
                "latency_events": (320_000, 36_000), "latency_models": (16, 4), "memory_events": ("1M,5M,10M", "50k,100k,200k"),
                "model_bytes_events": (40_000, 16_000)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    chosen = [s for s in ("envelopes", "single", "latency", "memory", "model_bytes") if getattr(args, s)]
    chosen = chosen or ["envelopes", "single", "latency", "memory", "model_bytes"]
    print(f"Driftline throughput benchmark: sections {', '.join(chosen)}")
    print(machine(), flush=True)
    results: dict = {}
    sections = {"envelopes": envelope_section, "single": single_section, "latency": latency_section,
                "memory": memory_section, "model_bytes": model_bytes_section}
    for name in chosen:
        if name not in results:
            started = time.monotonic()
            sections[name](args, results)
            print(f"  ({name}: {time.monotonic() - started:.0f}s)", flush=True)
    summary(results)


if __name__ == "__main__":
    main()
