"""Requests/s, events/s and p99 latency of `driftline ingest`, beside one worker's own events/s, in one run.

    python benchmarks/ingest.py [--single-pairs 3000] [--wide-pairs 300] [--concurrency 32]

A `driftline ingest` and a `driftline worker` run as subprocesses on real Kafka and Redis, on topics of
their own. A client (aiohttp, in this process) posts KServe inference-logger CloudEvent pairs in binary
mode, Open Inference Protocol bodies with 10 features per row (an [n, 8] FP64 tensor and two BYTES
tensors), `--concurrency` pairs at a time, request half then response half. The response half is answered
only after Kafka's delivery report (the "ack" latency below). For each pair size (1 row, 100 rows) it
prints requests/s and events/s through ingest, p50/p99 latency of all requests and of the acknowledging
halves, the Kafka messages (batch envelopes) ingest produced, the end-to-end events/s (first request to
the worker having saved every event's state; the worker is warmed up by one pair first) and how long the
worker took to drain after the last answer.

Beside them, the worker's own rate on a topic filled beforehand (benchmarks/throughput.py's measurement)
with envelopes of 100 events and with one event per message: the ratio ingest / worker says whether the
front door or the worker is the narrower part on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from rig import CLI, REPO, SETTINGS, BenchRun, end_offsets, free_port  # noqa: E402
from throughput import worker_drain  # noqa: E402
from workload import envelopes, wide_events  # noqa: E402

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def bodies(rows: int, seed: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 8)).round(6)
    cats = rng.choice(["a", "b", "c", "d"], size=(2, rows)).tolist()
    request = {"inputs": [{"name": "x", "shape": [rows, 8], "datatype": "FP64", "data": x.ravel().tolist()},
                          {"name": "c0", "shape": [rows], "datatype": "BYTES", "data": cats[0]},
                          {"name": "c1", "shape": [rows], "datatype": "BYTES", "data": cats[1]}]}
    response = {"outputs": [{"name": "predict", "shape": [rows], "datatype": "INT64",
                             "data": rng.integers(0, 2, rows).tolist()}]}
    return orjson.dumps(request), orjson.dumps(response)


async def post_pairs(url: str, pairs: int, rows: int, concurrency: int, tag: str) -> dict:
    variants = [bodies(rows, seed) for seed in range(16)]
    latencies: list[float] = []
    acks: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for k in range(pairs):
        queue.put_nowait(k)

    async def one(session: aiohttp.ClientSession, k: int, half: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "ce-id": f"{tag}-{k}", "ce-specversion": "1.0",
                   "ce-type": REQUEST if half == "request" else RESPONSE, "ce-source": "bench",
                   "ce-inferenceservicename": "bench"}
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            want = 202 if half == "request" else 200
            if resp.status != want:
                raise RuntimeError(f"{half} of pair {k}: HTTP {resp.status}")
        latencies.append(time.perf_counter() - started)
        if half == "response":
            acks.append(latencies[-1])

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            k = queue.get_nowait()
            request, response = variants[k % len(variants)]
            await one(session, k, "request", request)
            await one(session, k, "response", response)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "rps": 2 * pairs / elapsed, "eps": pairs * rows / elapsed,
            "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99)),
            "ack_p50": float(np.percentile(acks, 50)), "ack_p99": float(np.percentile(acks, 99))}


def through_ingest(pairs: int, rows: int, concurrency: int, timeout: float) -> dict:
    with BenchRun("ingest") as run:
        port = free_port()
        ingest = subprocess.Popen([*CLI, "ingest"], env=run.env(ingest_port=port), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=REPO)
        worker = run.start_worker()
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or ingest.poll() is not None:
                        raise RuntimeError("driftline ingest did not start") from None
                    time.sleep(0.1)

            def drained() -> int:
                want = sum(end_offsets(run.kafka, run.inference_topic).values())
                run.wait_applied(want, timeout)
                return want

            # warm-up: one pair through ingest and the worker (consumer group joined, state created)
            asyncio.run(post_pairs(url + "/", 1, rows, 1, run.app_id + "-warm"))
            before = drained()
            started = time.monotonic()
            result = asyncio.run(post_pairs(url + "/", pairs, rows, concurrency, run.app_id))
            posted = time.monotonic()
            want = drained() - before
            done = time.monotonic()
            # end to end: from the first request to the worker having saved every event's state
            result["worker_eps"] = pairs * rows / (done - started)
            result["drain_s"] = done - posted
            result["messages"] = want
        finally:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(60)
            worker.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single-pairs", type=int, default=3000)
    parser.add_argument("--wide-pairs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--worker-events", type=int, default=30_000, help="events for the worker-only runs")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    print(f"driftline ingest + one worker, 10 features per row, {args.concurrency} pairs in flight, "
          f"Kafka {SETTINGS.kafka.bootstrap}, Redis {SETTINGS.redis.redacted()}")
    print(f"{'CloudEvent pairs':<22}{'requests/s':>11}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'ack p50':>9}{'ack p99':>9}{'messages':>10}{'end-to-end ev/s':>17}{'drain s':>9}")
    for label, pairs, rows in (("1 row per pair", args.single_pairs, 1), ("100 rows per pair", args.wide_pairs, 100)):
        r = through_ingest(pairs, rows, args.concurrency, args.timeout)
        print(f"{label:<22}{r['rps']:>11,.0f}{r['eps']:>10,.0f}{r['p50'] * 1e3:>8.1f}{r['p99'] * 1e3:>8.1f}"
              f"{r['ack_p50'] * 1e3:>9.1f}{r['ack_p99'] * 1e3:>9.1f}{r['messages']:>10}{r['worker_eps']:>17,.0f}"
              f"{r['drain_s']:>9.2f}",
              flush=True)
    print("the worker alone, on a topic filled beforehand (benchmarks/throughput.py):")
    for label, per in (("envelopes of 100", 100), ("one event per message", 1)):
        n = args.worker_events if per > 1 else max(1000, args.worker_events // 10)
        messages = envelopes({"bench": wide_events("bench", n, 10, np.random.default_rng(0))}, per)
        rate, _peak_rss = worker_drain(messages, n, "ingest-worker", args.timeout)
        print(f"  {label:<24}{rate:>10,.0f} events/s", flush=True)


if __name__ == "__main__":
    main()
