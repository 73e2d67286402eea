"""Detection rate, delay and false alarms on synthetic streams with known change points.

    python benchmarks/detection.py [--runs 100] [--no-drift-events 2000000] [--jobs 2]

Every stream is a model with 20 features (16 numeric, 4 categorical) sent in
messages of 100 events through ``ModelMonitor.apply``, the code a worker runs
per message. Scenario I profiles an independent sample of the pre-change
process (20,000 rows) with the same builder as ``driftline profile``;
Scenario II has no profile. Drift cases change one column at event 8,000 and
run 6,000 events past it; a detection is the first alert on that column at or
after the change. Any other firing is a false alarm (a resolved message is
not). No-drift cases run ``--no-drift-events`` events per scenario (i.i.d. normal, AR(1) with
phi = 0.5, Student t with 3 degrees of freedom).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from stream_processors.batch import logic_params
from detectors.profile import build_profile  # noqa: E402
from detectors.model.monitor import ModelMonitor  # noqa: E402
from stream_processors.config import Settings  # noqa: E402

N_NUMERIC, N_CATEGORICAL = 16, 4
CHANGE_AT, AFTER = 8000, 6000
MESSAGE = 100
CATEGORIES = np.array(["a", "b", "c", "d"])
P_BEFORE = np.array([0.4, 0.3, 0.2, 0.1])

DRIFT_CASES = {
    # name: (column that changes, description)
    "abrupt mean +0.25 sd": "x0", "abrupt mean +0.5 sd": "x0", "abrupt mean +1 sd": "x0",
    "gradual mean +0.25 sd": "x0", "gradual mean +0.5 sd": "x0", "gradual mean +1 sd": "x0",
    "variance x2": "x0", "categorical frequencies": "c0", "new category": "c0", "missing rate 2% -> 10%": "x1",
}
NO_DRIFT_CASES = ["no drift, i.i.d.", "no drift, AR(1) 0.5", "no drift, Student t3"]


def _noise(rng: np.random.Generator, n: int, process: str) -> np.ndarray:
    if process == "ar1":
        out = np.empty((n, N_NUMERIC))
        e = rng.normal(0, np.sqrt(1 - 0.25), (n, N_NUMERIC))  # stationary variance 1
        out[0] = rng.normal(0, 1, N_NUMERIC)
        for i in range(1, n):
            out[i] = 0.5 * out[i - 1] + e[i]
        return out
    if process == "t3":
        return rng.standard_t(3, (n, N_NUMERIC))
    return rng.normal(0, 1, (n, N_NUMERIC))


def make_columns(case: str, n: int, rng: np.random.Generator, change_at: int | None) -> dict[str, np.ndarray]:
    process = "ar1" if "AR(1)" in case else "t3" if "Student" in case else "iid"
    x = _noise(rng, n, process) * 10.0 + 50.0
    cats = [rng.choice(CATEGORIES, size=n, p=P_BEFORE).astype(object) for _ in range(N_CATEGORICAL)]
    missing = rng.random(n) < 0.02
    if change_at is not None and change_at < n:
        after = slice(change_at, n)
        m = n - change_at
        if case.startswith("abrupt") or case.startswith("gradual"):
            size = float(case.split("+")[1].split()[0]) * 10.0
            ramp = np.minimum(np.arange(1, m + 1) / 2000.0, 1.0) if case.startswith("gradual") else 1.0
            x[after, 0] += size * ramp
        elif case == "variance x2":
            x[after, 0] = 50.0 + (x[after, 0] - 50.0) * np.sqrt(2.0)
        elif case == "categorical frequencies":
            cats[0][after] = rng.choice(CATEGORIES, size=m, p=[0.3, 0.3, 0.25, 0.15])
        elif case == "new category":
            new = rng.random(m) < 0.05
            cats[0][change_at:][new] = "e"
        elif case.startswith("missing"):
            missing[after] = rng.random(m) < 0.10
    x[missing, 1] = np.nan
    columns = {f"x{j}": x[:, j] for j in range(N_NUMERIC)}
    columns.update({f"c{j}": cats[j] for j in range(N_CATEGORICAL)})
    return columns


def to_events(columns: dict[str, np.ndarray], offset: int = 0) -> list[dict]:
    names = list(columns)
    rows = [col.tolist() for col in columns.values()]
    events = []
    for i in range(len(rows[0])):
        features = {}
        for name, col in zip(names, rows):
            v = col[i]
            features[name] = None if isinstance(v, float) and v != v else v
        events.append({"event_id": str(offset + i), "timestamp": 0.0, "features": features, "prediction": 0,
                       "score": None})  # the shape decode_message gives the worker
    return events


def reference_profile(case: str, seed: int, settings: Settings):
    rng = np.random.default_rng(10_000 + seed)
    columns = make_columns(case, 20_000, rng, change_at=None)
    spec = {name: ("numeric" if name.startswith("x") else "categorical",
                   col if name.startswith("x") else list(col)) for name, col in columns.items()}
    return build_profile("bench", "1", spec, created_at=0.0, window_size=settings.window_size,
                         monitor_params=settings.monitor_params(),
                         category_monitor_params=settings.category_monitor_params(),
                         category_monitors=settings.category_monitors)


def run_stream(case: str, scenario: str, seed: int, n: int, change_at: int | None) -> tuple[list[dict], int]:
    """Alerts (as findings) of one stream; returns them with the event count."""
    settings = Settings()
    profile = reference_profile(case, seed, settings) if scenario == "I" else None
    state = ModelMonitor("bench", "1", logic_params(settings).monitor, profile)
    rng = np.random.default_rng(seed)
    findings = []
    chunk = 50_000  # generate in chunks to bound memory on long no-drift runs
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        local_change = None if change_at is None else change_at - start
        columns = make_columns(case, size, rng, local_change if local_change is not None and local_change < size
                               else (0 if local_change is not None and local_change < 0 else None))
        events = to_events(columns, start)
        for i in range(0, size, MESSAGE):
            findings += [{"feature": f.feature, "type": f.alert_type, "detector": f.detector,
                          "at": int(f.last_event_id)} for f in state.apply(events[i:i + MESSAGE])
                         if f.status == "firing"]  # a resolved message closes an alarm, it is not one
    return findings, n


def drift_run(args) -> tuple[str, str, int | None, int]:
    case, scenario, seed = args
    column = DRIFT_CASES[case]
    findings, _ = run_stream(case, scenario, seed, CHANGE_AT + AFTER, CHANGE_AT)
    hits = [f["at"] for f in findings if f["feature"] == column and f["at"] >= CHANGE_AT]
    false = sum(1 for f in findings if not (f["feature"] == column and f["at"] >= CHANGE_AT))
    return case, scenario, (min(hits) - CHANGE_AT if hits else None), false


def no_drift_run(args) -> tuple[str, str, list[str], int]:
    case, scenario, seed, n = args
    findings, n = run_stream(case, scenario, seed, n, None)
    return case, scenario, [f["detector"] for f in findings], n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="runs per drift case and scenario")
    parser.add_argument("--no-drift-events", type=int, default=2_000_000, help="events per no-drift case and scenario")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cases", help="only cases whose name contains one of these '|'-separated strings")
    args = parser.parse_args()
    patterns = args.cases.split("|") if args.cases else None

    def chosen(case: str) -> bool:
        return patterns is None or any(p in case for p in patterns)
    started = time.time()
    print(f"model of {N_NUMERIC + N_CATEGORICAL} features; drift at event {CHANGE_AT}, {AFTER} events after; "
          f"{args.runs} runs per drift case; {args.no_drift_events:,} events per no-drift case")
    print(f"{'case':<28}{'scenario':>9}{'detected':>10}{'mean delay':>12}{'p90 delay':>11}{'FA/M events':>13}")
    with ProcessPoolExecutor(args.jobs) as pool:
        for case in DRIFT_CASES:
            if not chosen(case):
                continue
            for scenario in ("I", "II"):
                results = list(pool.map(drift_run, [(case, scenario, s) for s in range(args.runs)]))
                delays = [d for _, _, d, _ in results if d is not None]
                false = sum(f for *_, f in results)
                events = args.runs * (CHANGE_AT + AFTER)
                rate = len(delays) / len(results)
                mean = f"{np.mean(delays):.0f}" if delays else "-"
                p90 = f"{np.percentile(delays, 90):.0f}" if delays else "-"
                print(f"{case:<28}{scenario:>9}{rate:>10.1%}{mean:>12}{p90:>11}{false / events * 1e6:>13.2f}",
                      flush=True)
        per_job = max(args.no_drift_events // args.jobs, 1)
        for case in NO_DRIFT_CASES:
            if not chosen(case):
                continue
            for scenario in ("I", "II"):
                results = list(pool.map(no_drift_run, [(case, scenario, 1000 + j, per_job)
                                                       for j in range(args.jobs)]))
                by_detector = Counter(d for _, _, detectors, _ in results for d in detectors)
                alarms = sum(by_detector.values())
                events = sum(n for *_, n in results)
                which = ", ".join(f"{d} {k}" for d, k in by_detector.most_common()) or "none"
                print(f"{case:<28}{scenario:>9}{'-':>10}{'-':>12}{'-':>11}{alarms / events * 1e6:>13.2f}"
                      f"   ({alarms} alarms in {events:,} events: {which})", flush=True)
    print(f"({time.time() - started:.0f}s)")


if __name__ == "__main__":
    main()
