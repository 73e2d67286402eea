"""Report size and time for a 20-feature model fed with 1M events (issue 15: it must open in under 2 s).

    python benchmarks/report.py [--events 1000000] [--features 20] [--repeat 3] [--source monitor|synthetic]

With ``--source monitor`` (the default) the events go through a ``ModelMonitor``
as a worker applies them (messages of 1,000 events and their labels, not
through Kafka), and the report is built from its saved state
(``report_from_state``), as ``driftline report`` does. ``--source synthetic``
builds the report data directly (tests/stream_processors/report/synthetic.py).
The report is rendered and opened in Debian's headless chromium. Each figure is printed beside a floor measured in
the same run: for rendering, saving as many empty matplotlib figures of the
same size (the fixed cost of a chart); for opening, the load event of an empty
HTML page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectors.timeline import Timeline  # noqa: E402
from stream_processors.report import render_report  # noqa: E402
from stream_processors.report.charts import svg_data_uri, chart_style  # noqa: E402
from tests.stream_processors.report.browser import chromium, chromium_missing, load  # noqa: E402
from tests.stream_processors.report.synthetic import BINS, WINDOW, synthetic_report  # noqa: E402

MESSAGE = 1000


def _monitor(events: int, features: int):
    """A ModelMonitor fed like a worker: 70% numeric features (0-2 shift by 0.3, 0.6, 1 sd half way, 4's
    missing rate goes from 2% to 10% at 60%), the rest categorical (the first changes its mix half way);
    labels joined per message, accuracy from 0.9 to 0.8 at 70%."""
    import orjson

    from detectors.model.label_join import Joined
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params
    from stream_processors.config import Settings

    rng = np.random.default_rng(0)
    monitor = ModelMonitor("credit", "1", logic_params(Settings()).monitor)
    n_cat = max(features * 3 // 10, 2)
    numeric = [f"x{j:02d}" for j in range(features - n_cat)]
    categorical = [f"region_{c}" for c in range(n_cat)]
    for start in range(0, events, MESSAGE):
        at = np.arange(start, start + MESSAGE)
        late, later = at >= events // 2, at >= 6 * events // 10
        columns = {}
        for j, name in enumerate(numeric):
            values = rng.normal({0: 0.3, 1: 0.6, 2: 1.0}.get(j, 0.0) * late, 1.0)
            gone = rng.random(MESSAGE) < (np.where(later, 0.10, 0.02) if j == 4 else 0.02)
            columns[name] = [None if g else v for g, v in zip(gone.tolist(), values.tolist())]
        for c, name in enumerate(categorical):
            p = [0.25] * 4 if c == 0 and late[0] else [0.4, 0.3, 0.2, 0.1]
            columns[name] = rng.choice(["north", "south", "east", "west"], MESSAGE, p=p).tolist()
        scores = rng.beta(18, 2, MESSAGE).tolist()
        ids = [f"ev-{i:08d}" for i in at.tolist()]
        batch = [{"event_id": ids[k], "timestamp": 1_764_000_000.0 + start + k, "prediction": 1, "score": scores[k],
                  "features": {name: col[k] for name, col in columns.items()}} for k in range(MESSAGE)]
        monitor.apply(batch)
        right = rng.random(MESSAGE) < (0.8 if start >= 7 * events // 10 else 0.9)
        monitor.apply_labels([Joined(ids[k], "1", 1, scores[k], 1 if right[k] else 0, batch[k]["timestamp"])
                              for k in range(MESSAGE)])
    saved = orjson.dumps(monitor.to_dict())
    return ModelMonitor.from_dict(orjson.loads(saved), monitor.params), saved


def _series_bytes_per_feature(monitor) -> float:
    """Bytes of JSON the report series add per input feature: its two timelines and bin counts."""
    import orjson

    series = monitor.series.to_dict()
    names = [n for n in series["statistic"] if not n.startswith("__")]
    total = sum(len(orjson.dumps({"s": series["statistic"][n], "m": series["missing"].get(n),
                                  "c": series["counts"].get(n)})) for n in names)
    return total / max(len(names), 1)


def _state_bytes_per_feature(events: int, capacity: int) -> int:
    """JSON of what a worker keeps per feature for the report: two timelines and the production bin counts."""
    rng = np.random.default_rng(0)
    statistic, missing = Timeline(capacity, "max"), Timeline(capacity, "mean")
    for w in range(events // WINDOW):
        statistic.update((w + 1) * WINDOW - 1, float(rng.chisquare(BINS - 1) / WINDOW))
        missing.update((w + 1) * WINDOW - 1, float(rng.binomial(WINDOW, 0.02) / WINDOW))
    counts = rng.multinomial(events, np.full(BINS, 1 / BINS)).tolist()
    saved = {"statistic": statistic.to_dict(), "missing": missing.to_dict(), "counts": counts}
    return len(json.dumps(saved, separators=(",", ":")))


def _empty_charts_seconds(n: int) -> float:
    from matplotlib.figure import Figure

    started = time.perf_counter()
    with chart_style():
        for _ in range(n):
            fig = Figure(figsize=(9.6, 2.6))
            fig.add_subplot()
            svg_data_uri(fig)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--capacity", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", choices=("monitor", "synthetic"), default="monitor")
    args = parser.parse_args()
    if (missing := chromium_missing()):
        sys.exit(missing)

    started = time.perf_counter()
    feed_s = saved_bytes = series_bytes = None
    if args.source == "monitor":
        from stream_processors.report.from_state import report_from_state

        monitor, saved = _monitor(args.events, args.features)
        feed_s = time.perf_counter() - started
        saved_bytes, series_bytes = len(saved), _series_bytes_per_feature(monitor)
        started = time.perf_counter()
        data = report_from_state(monitor, [], generated_at=time.time())
    else:
        data = synthetic_report(args.events, args.features, capacity=args.capacity)
    build_s = time.perf_counter() - started
    renders = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        html = render_report(data)
        renders.append(time.perf_counter() - started)
    charts = html.count("<img ")
    floor_render = statistics.median(_empty_charts_seconds(charts) for _ in range(args.repeat))
    size = len(html.encode())

    with tempfile.TemporaryDirectory(prefix="driftline-report-bench-") as tmp:
        report, empty = Path(tmp) / "report.html", Path(tmp) / "empty.html"
        report.write_text(html, encoding="utf-8")
        empty.write_text("<!doctype html><html><head><meta charset=\"utf-8\"></head><body></body></html>")
        opens, floors = [], []
        with chromium() as browser:
            load(browser, empty)  # the first page of a fresh browser pays its own start-up
            for _ in range(args.repeat):
                floors.append(load(browser, empty).seconds)
                page = load(browser, report)
                if page.console_errors or page.page_errors or len(page.requests) != 1:
                    sys.exit(f"the report did not open cleanly: {page}")
                opens.append(page.seconds)

    render_s, open_s, floor_open = statistics.median(renders), statistics.median(opens), statistics.median(floors)
    state = _state_bytes_per_feature(args.events, args.capacity)
    print(f"model: {args.features} features, {args.events:,} events, timeline capacity {args.capacity}, "
          f"source {args.source}; median of {args.repeat}; decision {data.decision.verdict}")
    if feed_s is not None:
        print(f"fed through ModelMonitor in {feed_s:.1f} s; saved model state {saved_bytes:,} bytes "
              f"({saved_bytes / args.features:,.0f} per feature); report series {series_bytes:,.0f} bytes per "
              "feature (statistic and missing-rate timelines, bin counts)")
    print(f"{'':28}{'value':>12}{'floor':>12}{'ratio':>8}")
    print(f"{'build report data (s)':28}{build_s:>12.3f}{'-':>12}{'-':>8}")
    print(f"{'render (s)':28}{render_s:>12.3f}{floor_render:>12.3f}{render_s / floor_render:>8.2f}"
          f"   floor: {charts} empty matplotlib figures saved as SVG")
    print(f"{'file size (bytes)':28}{size:>12,}{'-':>12}{'-':>8}   {size / args.features:,.0f} per feature")
    print(f"{'open in chromium (s)':28}{open_s:>12.3f}{floor_open:>12.3f}{open_s / floor_open:>8.2f}"
          f"   floor: an empty HTML page; bound 2 s: {'met' if open_s < 2 else 'MISSED'}")
    if args.source == "synthetic":
        print(f"{'worker state per feature':28}{state:>12,}{'-':>12}{'-':>8}   bytes of JSON: 2 timelines + bin "
              "counts")


if __name__ == "__main__":
    main()
