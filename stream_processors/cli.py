"""``driftline``: the command line. Errors are one line on stderr and exit code 1."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from stream_processors.errors import DriftlineError
from stream_processors.settings import Settings, load_settings
from stream_processors.triggers import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S

__all__ = ["main", "build_parser"]

_ENV_HELP = ("Connections come from flags, else DRIFTLINE_KAFKA_BOOTSTRAP (default localhost:9092), "
             "DRIFTLINE_REDIS_URL (default redis://localhost:6379/0) and DRIFTLINE_APP_ID (default driftline).")


def _connection_flags(parser: argparse.ArgumentParser, redis_too: bool = True, app_id_too: bool = True) -> None:
    group = parser.add_argument_group("connections")
    group.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    if redis_too:
        group.add_argument("--redis-url", metavar="URL", help="Redis URL, e.g. redis://localhost:6379/0")
    if app_id_too:
        group.add_argument("--app-id", metavar="NAME",
                           help="worker app id: consumer group and namespace of the state in Redis")


def _column_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("columns (every column not named here is a feature)")
    group.add_argument("--id-column", metavar="C", help="column holding the event id (default: event_id if present, "
                                                        "else row numbers)")
    group.add_argument("--timestamp-column", metavar="C", help="epoch seconds or dates (default: timestamp if "
                                                               "present, else the time of sending)")
    group.add_argument("--prediction-column", metavar="C", help="the model's output (default: prediction)")
    group.add_argument("--score-column", metavar="C", help="score or probability (default: score if present)")
    group.add_argument("--label-column", metavar="C", help="ground truth, sent as label events (default: label "
                                                           "if present)")
    group.add_argument("--features", metavar="a,b,c", help="only these columns are features")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Driftline watches ML models in production: inference events in from Kafka, statistics "
                    "and drift alerts out. Start the local services with 'make stack-up', then run "
                    "'driftline worker' and 'driftline replay', and read results with 'driftline status' "
                    "and 'driftline alerts'. 'driftline demo' does all of it.",
        epilog=_ENV_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("worker", help="run a stream processor (consume events, update state, publish alerts)",
                       description="Run one Driftline worker. Start several with the same --app-id to share "
                                   "the partitions. SIGTERM or Ctrl-C stops it cleanly; a killed worker "
                                   "resumes where its saved state ends.", epilog=_ENV_HELP)
    _connection_flags(p)
    p.add_argument("--inference-topic", metavar="T", help="topic of inference events (default driftline.inference)")
    p.add_argument("--control-topic", metavar="T", help="topic for alerts (default driftline.control)")
    p.add_argument("--dead-letter-topic", metavar="T", help="topic for rejected events (default "
                                                            "driftline.deadletter)")
    p.add_argument("--cooldown-events", type=int, metavar="N",
                   help="after an alert on a feature, further alerts on it wait this many events (default 5000)")
    p.add_argument("--max-message-bytes", type=int, metavar="N",
                   help="messages larger than this are dead-lettered (default 1048576)")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="serve Prometheus metrics on this port (default 9464, DRIFTLINE_METRICS_PORT; 0: off)")
    p.add_argument("--metrics-host", metavar="H",
                   help="address for the metrics server (default 0.0.0.0, DRIFTLINE_METRICS_HOST)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")

    p = sub.add_parser("profile", help="build a reference profile from training data and register it",
                       description="Profile training data for one model version (Scenario I): per numeric "
                                   "feature moments, quantiles, histogram bins and the online detectors' "
                                   "baseline; per categorical or boolean feature frequencies; the prediction "
                                   "and score distributions; labels and the model's performance on them where "
                                   "a label column exists. The profile is registered in Redis and on the "
                                   "compacted topic driftline.profiles; workers compare that version's "
                                   "production events with it from their next batch.",
                       epilog="Example: driftline profile --model credit --model-version 1 --data train.csv. "
                              + _ENV_HELP)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--model-version", required=True, help="model version the profile is for")
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .csv.gz or .parquet")
    _column_flags(p)
    p.add_argument("--window-size", type=int, metavar="N",
                   help="events per comparison window (default 500, DRIFTLINE_WINDOW_SIZE)")
    p.add_argument("--json", action="store_true", help="print what was profiled as JSON")
    _connection_flags(p)

    p = sub.add_parser("replay", help="send a CSV or Parquet data set as inference (and label) events",
                       description="Replay a data set as inference events of one model version, in batch "
                                   "envelopes keyed by the model. Column types are inferred: numbers are "
                                   "numeric, true/false columns boolean, anything else categorical.",
                       epilog="Example: driftline replay --model credit --model-version 1 --data credit.csv "
                              "--rate 2000. " + _ENV_HELP)
    p.add_argument("--model", required=True, help="model id (the Kafka key)")
    p.add_argument("--model-version", required=True, help="model version")
    p.add_argument("--data", metavar="FILE", help=".csv, .csv.gz or .parquet")
    _column_flags(p)
    p.add_argument("--labels", metavar="FILE", help="a separate file of labels (sent after the data, or alone "
                                                    "without --data): its id and label columns are named by "
                                                    "--id-column and --label-column")
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="events per message (default 500)")
    p.add_argument("--rate", type=float, metavar="EVENTS_PER_S", help="pace the replay (default: as fast as "
                                                                      "Kafka takes it)")
    p.add_argument("--inference-topic", metavar="T")
    p.add_argument("--label-topic", metavar="T")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _connection_flags(p, redis_too=False)

    p = sub.add_parser("alerts", help="print alerts from the control topic",
                       description="Print drift and other alerts. Without --follow: the alerts already "
                                   "published, then exit. With --follow: new alerts as they arrive (add "
                                   "--from-beginning for the old ones too) until Ctrl-C or --timeout.",
                       epilog=_ENV_HELP)
    p.add_argument("--model", help="only this model's alerts")
    p.add_argument("--from-beginning", action="store_true", help="with --follow, start from the oldest alert")
    p.add_argument("--follow", action="store_true", help="keep waiting for new alerts")
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one alert JSON object per line")
    p.add_argument("--control-topic", metavar="T")
    _connection_flags(p, redis_too=False)

    p = sub.add_parser("triggers", help="run a command once per retrain trigger (the downstream retrain hook)",
                       description="Consume retrain triggers from the control topic with a consumer group of "
                                   "its own and run CMD through the shell once per trigger, in order, with the "
                                   "trigger JSON on stdin and DRIFTLINE_TRIGGER_ID, DRIFTLINE_MODEL, "
                                   "DRIFTLINE_MODEL_VERSION and DRIFTLINE_TRIGGER_ATTEMPT in its environment. "
                                   "A trigger counts as handled only when CMD exits 0; a failing CMD is retried "
                                   "with back-off. A CMD that runs past --timeout is killed with its whole "
                                   "process group and counts as a failed attempt. After --max-attempts failed "
                                   "attempts, or when the record is not a valid trigger, it is parked on "
                                   "<control topic>.parked (with the reason and exit codes) and the next "
                                   "trigger runs. SIGTERM or Ctrl-C kills a running CMD and exits without "
                                   "marking its trigger done, so it runs again on restart.",
                       epilog="Example: driftline triggers --exec 'python retrain.py --model \"$DRIFTLINE_MODEL\"' "
                              "--timeout 7200. " + _ENV_HELP)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--exec", dest="exec_command", metavar="CMD", help="shell command to run")
    action.add_argument("--replay-parked", metavar="ID",
                        help="write the parked trigger ID back to the control topic, then exit")
    p.add_argument("--group", default="driftline-retrain", help="consumer group (default driftline-retrain)")
    p.add_argument("--model", help="only this model's triggers")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"kill a run of CMD (and its children) after S seconds; it counts as a failed attempt "
                        f"(default {DEFAULT_TIMEOUT_S:g}, i.e. {DEFAULT_TIMEOUT_S / 3600:g} hours; 0: no limit)")
    p.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, metavar="N",
                   help=f"park a trigger after N failed attempts and go on with the next "
                        f"(default {DEFAULT_MAX_ATTEMPTS})")
    p.add_argument("--stop-after", type=float, metavar="S",
                   help="stop after S seconds, like SIGTERM (default: run until SIGTERM or Ctrl-C)")
    p.add_argument("--control-topic", metavar="T")
    _connection_flags(p)

    p = sub.add_parser("status", help="show a model's statistics from Redis",
                       description="Show the statistics the workers keep for a model: per feature count, "
                                   "missing, mean, std, min, max and quantiles, or category frequencies.",
                       epilog=_ENV_HELP)
    p.add_argument("--model", required=True)
    p.add_argument("--model-version", help="default: the version updated last")
    p.add_argument("--json", action="store_true", help="print the status as one JSON object")
    _connection_flags(p)

    p = sub.add_parser("ingest", help="HTTP front door: KServe CloudEvents, Open Inference Protocol, Driftline JSON",
                       description="Serve HTTP for model servers and label sources and produce what they send "
                                   "to the inference and label topics (batch envelopes keyed by model, "
                                   "idempotent producer). POST /v1/events and /v1/labels take Driftline JSON; "
                                   "POST /v1/cloudevents and / take KServe's inference-logger CloudEvents "
                                   "(binary or structured; KServe V1 or Open Inference Protocol V2 bodies), "
                                   "paired by ce-id. GET /healthz, /readyz, /metrics. A 200 means Kafka has "
                                   "the events; 503 with Retry-After means retry later.",
                       epilog="Example: driftline ingest --host 0.0.0.0 --port 8080 --mapping models.yaml. "
                              "Auth: DRIFTLINE_INGEST_TOKEN or DRIFTLINE_INGEST_TOKEN_FILE (bearer token); "
                              "TLS: DRIFTLINE_INGEST_TLS_CERT and DRIFTLINE_INGEST_TLS_KEY. Limits: "
                              "DRIFTLINE_INGEST_MAX_BODY_BYTES (8388608) and DRIFTLINE_INGEST_MAX_ROWS (10000) per "
                              "request, DRIFTLINE_MAX_MESSAGE_BYTES (1048576, the worker's: a larger event is 413), "
                              "DRIFTLINE_INGEST_MAX_PENDING_EVENTS (100000 waiting for Kafka, then 503), "
                              "DRIFTLINE_INGEST_ACK_TIMEOUT_S (10), DRIFTLINE_INGEST_PAIR_WAIT_S (60), "
                              "DRIFTLINE_INGEST_MAX_UNPAIRED (10000 halves) and DRIFTLINE_INGEST_MAX_UNPAIRED_BYTES "
                              "(67108864; past either the oldest halves are dropped and counted as unpaired). "
                              "Kafka: --kafka-bootstrap, else DRIFTLINE_KAFKA_BOOTSTRAP (default localhost:9092).")
    p.add_argument("--host", dest="ingest_host", metavar="H",
                   help="address to listen on (default 127.0.0.1, DRIFTLINE_INGEST_HOST)")
    p.add_argument("--port", dest="ingest_port", type=int, metavar="N",
                   help="port (default 8080, DRIFTLINE_INGEST_PORT)")
    p.add_argument("--mapping", dest="ingest_mapping", metavar="FILE",
                   help="YAML or TOML file naming tensor columns, prediction and score outputs and the version "
                        "per model (DRIFTLINE_INGEST_MAPPING); see README 'From your model server'")
    p.add_argument("--inference-topic", metavar="T", help="where inference events go (default driftline.inference)")
    p.add_argument("--label-topic", metavar="T", help="where label events go (default driftline.labels)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    _connection_flags(p, redis_too=False, app_id_too=False)

    p = sub.add_parser("demo", help="replay a drifting example data set and show alerts as they arrive",
                       description="Generate an example data set whose 'income' shifts half way, start a "
                                   "worker, replay the data and print the drift alerts as they arrive, then "
                                   "the model's status. Needs Kafka and Redis ('make stack-up').",
                       epilog=_ENV_HELP)
    p.add_argument("--events", type=int, default=20_000, help="rows in the example data (default 20000)")
    p.add_argument("--rate", type=float, default=2000.0, help="replay pace in events/s (default 2000)")
    p.add_argument("--data-dir", default="demo-data", help="where the example CSV is written (default demo-data)")
    _connection_flags(p)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    names = ("kafka_bootstrap", "redis_url", "app_id", "inference_topic", "label_topic", "control_topic",
             "dead_letter_topic", "cooldown_events", "max_message_bytes", "log_level", "window_size",
             "metrics_port", "metrics_host", "ingest_host", "ingest_port", "ingest_mapping")
    return load_settings({n: getattr(args, n, None) for n in names})


def _dump(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.run import run_worker

    return run_worker(settings)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import ReplayError, label_events, load_table, plan_columns, replay, rows_to_events
    from producers.topics import KafkaUnreachable, ensure_topics

    if not args.data and not args.labels:
        raise ReplayError("nothing to replay: give --data FILE, --labels FILE, or both")
    events, labels, features = [], [], {}
    if args.data:
        df = load_table(args.data)
        plan = plan_columns(df, args.id_column, args.timestamp_column, args.prediction_column, args.score_column,
                            args.label_column if not args.labels else None,
                            args.features.split(",") if args.features else None)
        events, labels = rows_to_events(df, plan, args.model)
        features = plan.features
    if args.labels:
        labels = label_events(load_table(args.labels), args.id_column, args.label_column, args.timestamp_column)
    try:
        ensure_topics(settings.kafka_bootstrap, [settings.inference_topic, settings.label_topic],
                      settings.topic_partitions, timeout_s=10)
    except KafkaUnreachable as exc:
        raise DriftlineError(str(exc)) from None
    result = replay(settings.kafka_bootstrap, args.model, args.model_version, events, labels,
                    settings.inference_topic, settings.label_topic, batch_size=args.batch_size, rate=args.rate)
    summary = {"model": args.model, "model_version": args.model_version, "events": result.events,
               "labels": result.labels, "messages": result.messages, "failed": result.failed,
               "seconds": round(result.seconds, 3), "features": features}
    if args.json:
        _dump(summary)
    else:
        kinds = ", ".join(f"{k} ({v})" for k, v in features.items()) or "none"
        print(f"replayed {result.events} events and {result.labels} labels of model {args.model} "
              f"v{args.model_version} in {result.messages} messages ({result.seconds:.1f}s); features: {kinds}")
    if result.failed:
        print(f"driftline: error: Kafka refused {result.failed} events", file=sys.stderr)
        return 1
    return 0


def cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import load_table, plan_columns
    from stream_processors.profiles import profile_from_table, register_profile
    from stream_processors.state import profile_key

    df = load_table(args.data)
    plan = plan_columns(df, args.id_column, args.timestamp_column, args.prediction_column, args.score_column,
                        args.label_column, args.features.split(",") if args.features else None,
                        require_prediction=False)
    profile = profile_from_table(df, plan, args.model, args.model_version, settings)
    register_profile(settings, profile)
    columns = {name: entry["kind"] for name, entry in profile.columns.items()}
    summary = {"model": args.model, "model_version": args.model_version, "rows": profile.rows,
               "window_size": settings.window_size, "columns": columns, "labels": profile.labels,
               "performance": profile.performance, "registered": {"redis": profile_key(settings.app_id, args.model,
                                                                                      args.model_version),
                                                                  "topic": settings.profile_topic}}
    if args.json:
        _dump(summary)
        return 0
    features = ", ".join(f"{k} ({v})" for k, v in columns.items() if not k.startswith("__"))
    print(f"profiled {profile.rows} rows of model {args.model} v{args.model_version}")
    print(f"  features: {features}")
    for name, label in (("__prediction__", "prediction"), ("__score__", "score")):
        if name in columns:
            print(f"  {label}: {columns[name]}")
    if profile.performance:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in profile.performance.items()
                            if isinstance(v, float))
        print(f"  performance on the reference ({profile.performance['task']}, "
              f"{profile.performance['count']} labelled rows): {figures}")
    print(f"  comparison windows of {settings.window_size} events")
    print(f"registered in Redis and on topic {settings.profile_topic} for worker app {settings.app_id!r}; "
          "its workers use it from their next batch")
    return 0


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.reading import format_alert, iter_alerts

    for alert in iter_alerts(settings, args.from_beginning, args.follow, args.timeout, args.model):
        if args.json:
            _dump(alert)
        else:
            print(format_alert(alert), flush=True)
    return 0


def cmd_triggers(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.triggers import replay_parked, run_triggers

    if args.replay_parked:
        return replay_parked(settings, args.replay_parked)
    return run_triggers(settings, args.exec_command, args.group, args.model, stop_after_s=args.stop_after,
                        timeout_s=args.timeout, max_attempts=args.max_attempts)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.reading import model_status, print_status

    status = model_status(settings, args.model, args.model_version)
    if args.json:
        _dump(status)
    else:
        print_status(status)
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.ingest.app import run_ingest

    return run_ingest(settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.demo import run_demo

    return run_demo(settings, events=args.events, rate=args.rate, data_dir=args.data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # librdkafka reports every failed reconnect; what matters reaches the user as one error line.
    logging.getLogger("driftline.kafka").setLevel(logging.CRITICAL)
    from producers.replay import ReplayError

    try:
        settings = _settings(args)
        handler = {"worker": cmd_worker, "profile": cmd_profile, "replay": cmd_replay, "alerts": cmd_alerts,
                   "triggers": cmd_triggers, "status": cmd_status, "ingest": cmd_ingest, "demo": cmd_demo}[args.command]
        return handler(args, settings)
    except (DriftlineError, ReplayError) as exc:
        print(f"driftline: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `driftline status ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
