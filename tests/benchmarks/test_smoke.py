"""The benchmarks run end to end on the real services and print every figure they promise (--quick sizes).

The figures themselves are not checked: on a shared 2-core machine they vary from run to run. What is
checked is that each one is measured and printed, so that a change cannot silently drop a figure.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NUMBER = r"[+-]?[\d,]+(?:\.\d+)?"


def run_quick(script: str, timeout: float) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_throughput_prints_every_figure() -> None:
    out = run_quick("throughput.py", timeout=300)
    summary = out.split("\nsummary\n", 1)[1]
    for pattern in (
        rf"envelopes of 500, events/s \(floor: json\.loads\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+>= 0\.4",
        rf"peak worker RSS, MiB, behind a backlog of \(MiB\)\s+{NUMBER}\s+{NUMBER}",
        rf"one event per message, events/s \(floor: counting\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+>= 0\.6",
        rf"latency at {NUMBER} ev/s, p50/p95/p99 s\s+{NUMBER}/{NUMBER}/{NUMBER}\s+p99 <= 1",
        rf"the same from Kafka \(SDK buffering left out\)\s+{NUMBER}/{NUMBER}/{NUMBER}",
        rf"worker: mean batch s, busy\s+{NUMBER},\s+{NUMBER}%",
        rf"worker RSS growth, .* events\s+{NUMBER}%",
        rf"Redis used_memory growth, .* events\s+{NUMBER}%",
        rf"Redis bytes per 20-feature model version\s+{NUMBER}",
        r"machine: \d+ cores, .*GiB memory",
    ):
        assert re.search(pattern, summary), f"{pattern!r} not in:\n{summary}"
    assert len(re.findall(rf"memory at\s+{NUMBER} events: worker RSS\s+{NUMBER} MiB, Redis used_memory\s+"
                          rf"{NUMBER} MiB", out)) == 3, out
    assert re.search(rf"orjson\.loads {NUMBER}/s", out), out


def test_scaling_prints_every_figure() -> None:
    out = run_quick("scaling.py", timeout=300)
    summary = out.split("\nsummary\n", 1)[1]
    assert re.search(rf"^1\s+{NUMBER}$", summary, re.M), summary
    assert re.search(rf"^2\s+{NUMBER}\s+two/one {NUMBER}$", summary, re.M), summary
    rows = re.findall(rf"^([\d,]+)(?:\s+{NUMBER}){{8}}\s+([\d,]+)$", summary, re.M)
    assert rows == [("10", "10"), ("100", "100")], summary  # every model version exported, under the cap
    assert re.search(rf"100 vs 10 models: events/s x{NUMBER}, status x{NUMBER}, --model-version x{NUMBER}, "
                     rf"list x{NUMBER}, /metrics x{NUMBER}", summary), summary
    assert re.search(r"machine: \d+ cores, .*GiB memory", summary), summary


def test_throughput_pairs_report_the_median_ratio() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "throughput.py"), "--envelopes", "--single", "--pairs", "3",
                           "--envelope-events", "8k", "--single-events", "1k"], capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    summary = out.split("\nsummary\n", 1)[1]
    for section, line in (("envelopes", r"worker/json\.loads (\d\.\d+)"), ("single", r"worker/floor (\d\.\d+)")):
        ratios = [float(x) for x in re.findall(line, out)]
        assert len(ratios) == 3, out
        median = sorted(ratios)[1]
        listed = ", ".join(f"{x:.3f}" for x in ratios)
        label = "envelopes of 500" if section == "envelopes" else "one event per message"
        row = next(r for r in summary.splitlines() if r.startswith(label))
        assert f"(median of 3 pairs: {listed})" in row, row
        assert float(row.split()[row.split().index(">=") - 1]) == pytest.approx(median, abs=0.0015), row
    # each envelope pair's floor is timed on both sides of its worker: the printed floor is the rate of the mean
    # time per event of the two passes, and the pair's ratio is the worker's rate over it
    pairs = re.findall(r"worker ([\d,]+) events/s; floor json\.loads ([\d,]+)/s \(([\d,]+) before the worker, "
                       r"([\d,]+) after; .*?worker/json\.loads (\d\.\d+)", out)
    assert len(pairs) == 3, out
    passes = [[float(x.replace(",", "")) for x in p[:4]] for p in pairs]
    for worker, floor, before, after in passes:
        # each figure is printed rounded to a whole number: the floor from the unrounded passes
        assert floor == pytest.approx(2 / (1 / before + 1 / after), abs=2.0)
        assert min(before, after) - 1 <= floor <= max(before, after) + 1
    assert any(before != after for _w, _f, before, after in passes), "the two passes of every pair were the same"
    for p in pairs:
        assert float(p[4]) == pytest.approx(float(p[0].replace(",", "")) / float(p[1].replace(",", "")), abs=0.0015)


def test_throughput_refuses_pairs_below_one() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "throughput.py"), "--pairs", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--pairs must be at least 1" in done.stderr


def test_stages_prints_each_stage_and_they_add_up() -> None:
    out = run_quick("stages.py", timeout=300)
    rows = dict(re.findall(rf"^(.+?)\s+({NUMBER})(?:\s+\d+%)?\s*$", out, re.M))
    stages = ["decoding and checking (decode_message)", "the per-event bounds (EventBounds)",
              "applying the events (GuardedMonitors.apply_run)", "the label join (LabelJoin.run)",
              "loading, copying and saving states", "the rest of process (offsets read, grouping, figures)",
              "the commit (one script per partition, on Redis)", "after the commit (the collection put off)"]
    for stage in stages:
        assert stage in rows, out
    floor = float(rows["json.loads of the same messages (the floor)"])
    total = re.search(rf"^all\s+({NUMBER})\s+ratio to json\.loads ({NUMBER})$", out, re.M)
    assert total, out
    # the stages are the whole (each printed to 0.01 us), and the ratio is the floor's time over it
    assert sum(float(rows[s]) for s in stages) == pytest.approx(float(total[1]), abs=0.01 * len(stages))
    assert float(total[2]) == pytest.approx(floor / float(total[1]), abs=0.005)
    assert all(float(rows[s]) > 0 for s in stages if "join" not in s and "after the commit" not in s)
    assert float(rows["after the commit (the collection put off)"]) >= 0
