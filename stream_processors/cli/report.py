"""``driftline report``: what Driftline decides for a model version, and the evidence, as one HTML file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stream_processors.cli.alerts import iter_alerts
from stream_processors.cli.flags import ENV_HELP, connection_flags, model_flags
from stream_processors.cli.status import load_monitor
from stream_processors.config import Settings
from stream_processors.display import printable
from stream_processors.errors import DriftlineError

__all__ = ["add_parser", "run", "write_report"]


def write_report(settings: Settings, model: str, version: str | None = None, output: str | None = None,
                 last: int | None = None) -> Path:
    """Read the model version's state from Redis and its alerts from the control topic, render, write; the
    path written. Control-topic records the report cannot show are left out, their count one line on stderr
    (and a sentence in the report)."""
    from stream_processors.report import render_report
    from stream_processors.report.from_state import report_from_state

    monitor, _store, _versions = load_monitor(settings, model, version)
    alerts = list(iter_alerts(settings, from_beginning=True, follow=False, timeout_s=60, model=model))
    data = report_from_state(monitor, alerts, generated_at=time.time(), last=last)
    if data.skipped_alerts:
        print(f"driftline: skipped {data.skipped_alerts} malformed record(s) of model {printable(model)} "
              f"on {settings.control_topic} (a field missing or of the wrong type)", file=sys.stderr, flush=True)
    path = Path(output or f"driftline-report-{_safe(model)}-{_safe(monitor.model_version)}.html")
    try:
        path.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        raise DriftlineError(f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None
    return path.resolve()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "_"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="write a model version's decision and evidence as one HTML file",
        description="Write what Driftline decides for a model version (continue or retrain, why, since when) "
                    "and the evidence behind it as one self-contained HTML file that opens offline in any "
                    "browser: per feature, most drifted first, the reference vs production distribution, the "
                    "drift statistic over time against its threshold with its episodes, and the missing rate; "
                    "prediction and score distributions; performance over time; the alerts and retrain "
                    "triggers. The state comes from Redis (what the workers keep), the alerts from the control "
                    "topic. Prints the path of the file written.",
        epilog=ENV_HELP)
    model_flags(p)
    p.add_argument("--output", metavar="FILE.html",
                   help="where to write (default: driftline-report-MODEL-VERSION.html here)")
    p.add_argument("--last", type=_positive, metavar="N",
                   help="show only the last N events of the series (default: all the worker's series cover)")
    p.add_argument("--control-topic", metavar="T")
    connection_flags(p)


def _positive(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of events, got {text}")
    return n


def run(args: argparse.Namespace, settings: Settings) -> int:
    print(write_report(settings, args.model, args.model_version, args.output, args.last), flush=True)
    return 0
