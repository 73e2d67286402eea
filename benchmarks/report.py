"""Report size and time for a 20-feature model fed with 1M events (issue 15: it must open in under 2 s).

    python benchmarks/report.py [--events 1000000] [--features 20] [--repeat 3]

Builds the report data the way a worker would keep it (Timeline series per
500-event window, numpy histograms on the reference's bins; see
tests/stream_processors/report/synthetic.py), renders it, and opens it in
Debian's headless chromium. Each figure is printed beside a floor measured in
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
    args = parser.parse_args()
    if (missing := chromium_missing()):
        sys.exit(missing)

    started = time.perf_counter()
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
    print(f"model: {args.features} features, {args.events:,} events, timeline capacity {args.capacity}; "
          f"median of {args.repeat}")
    print(f"{'':28}{'value':>12}{'floor':>12}{'ratio':>8}")
    print(f"{'build report data (s)':28}{build_s:>12.3f}{'-':>12}{'-':>8}")
    print(f"{'render (s)':28}{render_s:>12.3f}{floor_render:>12.3f}{render_s / floor_render:>8.2f}"
          f"   floor: {charts} empty matplotlib figures saved as SVG")
    print(f"{'file size (bytes)':28}{size:>12,}{'-':>12}{'-':>8}   {size / args.features:,.0f} per feature")
    print(f"{'open in chromium (s)':28}{open_s:>12.3f}{floor_open:>12.3f}{open_s / floor_open:>8.2f}"
          f"   floor: an empty HTML page; bound 2 s: {'met' if open_s < 2 else 'MISSED'}")
    print(f"{'worker state per feature':28}{state:>12,}{'-':>12}{'-':>8}   bytes of JSON: 2 timelines + bin counts")


if __name__ == "__main__":
    main()
