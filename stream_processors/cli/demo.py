"""``driftline demo``: a drifting data set through a real worker, alerts as they arrive."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from producers.topics import ensure_topics
from stream_processors.cli.alerts import format_alert, iter_alerts
from stream_processors.cli.flags import ENV_HELP, connection_flags
from stream_processors.cli.report import write_report
from stream_processors.cli.status import model_status, print_status
from stream_processors.errors import ServiceUnavailable
from stream_processors.config import Settings
from stream_processors.state import RedisStateStore

__all__ = ["add_parser", "run", "run_demo"]

MODEL, VERSION = "credit", "1"


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def run_demo(settings: Settings, events: int, rate: float, data_dir: str) -> int:
    from producers.example_data import drifting_credit_data
    from producers.replay import plan_columns, replay, rows_to_events

    stamp = time.strftime("%Y%m%d-%H%M%S")
    s = settings.replace(app_id=f"driftline-demo-{stamp}", inference_topic=f"driftline-demo-{stamp}.inference",
                         label_topic=f"driftline-demo-{stamp}.labels", control_topic=f"driftline-demo-{stamp}.control",
                         dead_letter_topic=f"driftline-demo-{stamp}.deadletter", log_level="warning",
                         metrics_port=0)
    RedisStateStore(s.redis, s.app_id).ping()
    ensure_topics(s.kafka, [s.inference_topic, s.label_topic, s.control_topic, s.dead_letter_topic],
                  s.topic_partitions, timeout_s=10)

    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = drifting_credit_data(n=events)
    data_path = out / "credit.csv"
    frame.to_csv(data_path, index=False)
    _say(f"wrote {events} loan applications to {data_path}; 'income' rises by one standard deviation "
         f"from event app-{events // 2:07d} on, nothing else changes")

    log_path = out / f"worker-{stamp}.log"
    log = open(log_path, "wb")
    worker = subprocess.Popen([sys.executable, "-m", "stream_processors.cli", "worker"], env=s.to_env(),
                              stdout=log, stderr=subprocess.STDOUT)
    _say(f"started a worker (app id {s.app_id}, log {log_path})")
    rows, labels = rows_to_events(frame, plan_columns(frame), MODEL)
    sent = threading.Event()
    failure: list[BaseException] = []

    def send() -> None:
        try:
            replay(s.kafka, MODEL, VERSION, rows, labels, s.inference_topic, s.label_topic, batch_size=100,
                   rate=rate, progress=False)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            sent.set()

    _say(f"replaying at {rate:.0f} events/s; drift alerts appear below as the worker raises them (Ctrl-C stops)")
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    store = RedisStateStore(s.redis, s.app_id)
    caught_up_at: list[float] = []

    def finished() -> bool:
        if worker.poll() is not None:
            raise ServiceUnavailable(f"the worker exited ({worker.returncode}); see {log_path}")
        if not sent.is_set():
            return False
        state = store.load([(MODEL, VERSION)])[(MODEL, VERSION)]
        if state is None or state["events"] < len(rows):
            return False
        caught_up_at.append(time.monotonic())
        return time.monotonic() - caught_up_at[0] > 2.0  # a moment for the last alerts to arrive

    try:
        count = 0
        for alert in iter_alerts(s, from_beginning=True, follow=True, timeout_s=max(120.0, 3 * events / rate),
                                 on_idle=finished):
            count += 1
            print(f"  ALERT {format_alert(alert)}", flush=True)
        if failure:
            raise ServiceUnavailable(f"the replay failed: {failure[0]}")
        _say(f"done: {len(rows)} events replayed, {count} alerts\n")
        print_status(model_status(s, MODEL, VERSION))
        print()
        _say("look again with:")
        flags = f"--app-id {s.app_id}"
        print(f"  driftline status --model {MODEL} {flags}")
        print(f"  driftline alerts --model {MODEL} --control-topic {s.control_topic}")
        print(f"  driftline report --model {MODEL} {flags} --control-topic {s.control_topic}")
        report = write_report(s, MODEL, VERSION, str(out / f"report-{MODEL}-{VERSION}-{stamp}.html"))
        print()
        _say(f"the report of model {MODEL} version {VERSION} (decision, distributions, drift over time); open "
             f"it in a browser:\n  {report}")
        return 0
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="replay a drifting example data set and show alerts as they arrive",
                       description="Generate an example data set whose 'income' shifts half way, start a "
                                   "worker, replay the data and print the drift alerts as they arrive, then "
                                   "the model's status, and write its report (an HTML file; the path is printed). Needs "
                                   "Kafka and Redis ('make stack-up').",
                       epilog=ENV_HELP)
    p.add_argument("--events", type=int, default=20_000, help="rows in the example data (default 20000)")
    p.add_argument("--rate", type=float, default=2000.0, help="replay pace in events/s (default 2000)")
    p.add_argument("--data-dir", default="demo-data", help="where the example CSV is written (default demo-data)")
    connection_flags(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_demo(settings, events=args.events, rate=args.rate, data_dir=args.data_dir)
