"""How Driftline scales: one worker against two in one consumer group, and 10 models against many, in one run.

    python benchmarks/scaling.py            # about 5 minutes on 2 cores
    python benchmarks/scaling.py --quick    # under a minute (for a smoke test)

Workers: 16 car-loan-like models spread evenly over the 4 partitions of one topic (by the producers'
partitioner). The workers are started first and the run waits until their consumer group is stable with
every worker holding partitions; then envelopes of 500 events, encoded beforehand, are written as fast as
Kafka takes them, and the events/s is timed from the first saved batch to the last. The same messages for
one worker and for two: the ratio says what the second adds.

Models: the same number of events of 10 features each (8 numeric, 2 categorical), in envelopes of 20, once
for 10 models and once for --many-models, each on topics and a Redis namespace of its own. For each: the
worker's events/s (on a topic filled beforehand), the Redis memory per model (MEMORY USAGE of the run's
keys over the models; predictions not kept), the time of `driftline status` for one model (`--model M`,
and `--model M --model-version V`, which reads that version's key only) and for the list of models (its
first page of 20, with the total), each the median of 3, beside `driftline --help`, the cost of starting the
command at all; and the time of a GET of the worker's /metrics (median of 5, with its size and the number of
model versions it exports: per-model gauges come from what the worker applied, capped at
DRIFTLINE_MAX_MODEL_SERIES, so their cost does not follow the models in Redis); --quick times each once
(/metrics: median of 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import BenchRun, balanced_models, machine, redis_memory_of  # noqa: E402
from throughput import parse_count  # noqa: E402
from workload import envelopes, loan_events, wide_events  # noqa: E402

ENVELOPE = 500
MANY_ENVELOPE = 20


def group_rate(workers: int, messages: list[tuple[bytes, bytes]], events: int, timeout: float) -> float:
    with BenchRun(f"scale{workers}") as run:
        started = [run.start_worker() for _ in range(workers)]
        deadline = time.monotonic() + 90
        while run.group_members() < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workers} workers did not share the partitions within 90s:\n"
                                   + "\n".join(w.log_tail() for w in started))
            time.sleep(0.2)
        run.fill(messages)
        return run.drain_rate(len(messages), events / len(messages), timeout)


def workers_section(args, results: dict) -> None:
    models = balanced_models("loan", 16, 4)
    rng = np.random.default_rng(7)
    per_model = args.worker_events // len(models)
    messages = envelopes({m: loan_events(m, per_model, rng) for m in models}, ENVELOPE)
    events = per_model * len(models)
    one = group_rate(1, messages, events, args.timeout)
    print(f"one worker: {events:,} events in envelopes of {ENVELOPE}, 4 partitions: {one:,.0f} events/s",
          flush=True)
    two = group_rate(2, messages, events, args.timeout)
    results["workers"] = (events, one, two)
    print(f"two workers, one consumer group: {two:,.0f} events/s; two/one {two / one:.2f}", flush=True)


def median_seconds(fn, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def models_run(n_models: int, events: int, timeout: float, repeats: int) -> dict:
    rng = np.random.default_rng(8)
    models = [f"m{k:05d}" for k in range(n_models)]
    per_model = max(1, events // n_models)
    messages = envelopes({m: wide_events(m, per_model, 10, rng) for m in models}, MANY_ENVELOPE)
    with BenchRun(f"models{n_models}") as run:
        run.fill(messages)
        worker = run.start_worker(keep_predictions=False)
        rate = run.drain_rate(len(messages), per_model * n_models / len(messages), timeout)
        size, keys = redis_memory_of(run.redis_url, f"*{run.app_id}*")

        def status(*args: str):
            def once() -> None:
                done = run.cli("status", *args, "--json")
                if done.returncode != 0:
                    raise RuntimeError(f"driftline status failed: {done.stderr.strip()}")
            return once

        model = models[n_models // 2]
        status_s = median_seconds(status("--model", model), repeats)
        version_s = median_seconds(status("--model", model, "--model-version", "1"), repeats)
        list_s = median_seconds(status("--limit", "20"), repeats)
        help_s = median_seconds(lambda: run.cli("--help"), repeats)
        scrape_s = median_seconds(worker.scrape, 2 * repeats - 1)
        scrape_bytes = worker.scrape()[1]
        exported = worker.exported_models()
    return {"models": n_models, "events": per_model * n_models, "rate": rate, "bytes_per_model": size / n_models,
            "keys": keys, "status_s": status_s, "version_s": version_s, "list_s": list_s, "help_s": help_s,
            "scrape_s": scrape_s, "scrape_bytes": scrape_bytes, "exported": exported}


def models_section(args, results: dict) -> None:
    rows = []
    for n in (10, args.many_models):
        r = models_run(n, args.model_events, args.timeout, 1 if args.quick else 3)
        rows.append(r)
        print(f"{n:,} models of 10 features, {r['events']:,} events in envelopes of {MANY_ENVELOPE}: "
              f"{r['rate']:,.0f} events/s; Redis {r['bytes_per_model']:,.0f} B per model ({r['keys']} keys); "
              f"status --model {r['status_s']:.2f}s, with --model-version {r['version_s']:.2f}s, list "
              f"{r['list_s']:.2f}s (--help {r['help_s']:.2f}s); /metrics {r['scrape_s'] * 1e3:.1f} ms, "
              f"{r['scrape_bytes']:,} B, {r['exported']:,} model versions exported", flush=True)
    results["models"] = rows


def summary(results: dict) -> None:
    print("\nsummary")
    if "workers" in results:
        events, one, two = results["workers"]
        print(f"{'workers':<10}{'events/s':>12}")
        print(f"{'1':<10}{one:>12,.0f}")
        print(f"{'2':<10}{two:>12,.0f}   two/one {two / one:.2f}")
    if "models" in results:
        print(f"{'models':<10}{'events/s':>12}{'Redis B/model':>15}{'status s':>10}{'-version s':>11}"
              f"{'list s':>8}{'--help s':>10}{'/metrics ms':>13}{'/metrics B':>12}{'exported':>10}")
        for r in results["models"]:
            print(f"{r['models']:<10,}{r['rate']:>12,.0f}{r['bytes_per_model']:>15,.0f}{r['status_s']:>10.2f}"
                  f"{r['version_s']:>11.2f}{r['list_s']:>8.2f}{r['help_s']:>10.2f}{r['scrape_s'] * 1e3:>13.1f}"
                  f"{r['scrape_bytes']:>12,}{r['exported']:>10,}")
        few, many = results["models"][0], results["models"][-1]
        print(f"{many['models']:,} vs {few['models']:,} models: events/s x{many['rate'] / few['rate']:.2f}, "
              f"status x{many['status_s'] / few['status_s']:.2f}, --model-version x"
              f"{many['version_s'] / few['version_s']:.2f}, list x{many['list_s'] / few['list_s']:.2f}, "
              f"/metrics x{many['scrape_s'] / few['scrape_s']:.2f}")
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--workers", action="store_true", help="run the 1 vs 2 workers section (default: both)")
    parser.add_argument("--models", action="store_true", help="run the 10 vs many models section (default: both)")
    parser.add_argument("--worker-events", type=parse_count, help="default 800k (quick: 32k)")
    parser.add_argument("--many-models", type=parse_count, help="default 10k (quick: 100)")
    parser.add_argument("--model-events", type=parse_count, help="events per model count, default 200k "
                                                                 "(quick: 40k: more messages than one batch "
                                                                 "takes, or no rate can be timed)")
    parser.add_argument("--timeout", type=float, default=900, help="longest wait for workers to drain")
    args = parser.parse_args()
    defaults = {"worker_events": (800_000, 32_000), "many_models": (10_000, 100), "model_events": (200_000, 40_000)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    both = not (args.workers or args.models)
    print("Driftline scaling benchmark")
    print(machine(), flush=True)
    results: dict = {}
    for chosen, section in ((args.workers, workers_section), (args.models, models_section)):
        if chosen or both:
            started = time.monotonic()
            section(args, results)
            print(f"  ({section.__name__.removesuffix('_section')}: {time.monotonic() - started:.0f}s)", flush=True)
    summary(results)


if __name__ == "__main__":
    main()
