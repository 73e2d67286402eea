"""``driftline replay``: send a CSV or Parquet data set as inference (and label) events."""

from __future__ import annotations

import argparse
import sys

from stream_processors.cli.flags import ENV_HELP, column_flags, connection_flags, dump
from stream_processors.config import Settings

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("replay", help="send a CSV or Parquet data set as inference (and label) events",
                       description="Replay a data set as inference events of one model version, in batch "
                                   "envelopes keyed by the model. Column types are inferred: numbers are "
                                   "numeric, true/false columns boolean, anything else categorical.",
                       epilog="Example: driftline replay --model credit --model-version 1 --data credit.csv "
                              "--rate 2000. " + ENV_HELP)
    p.add_argument("--model", required=True, help="model id (the Kafka key)")
    p.add_argument("--model-version", required=True, help="model version")
    p.add_argument("--data", metavar="FILE", help=".csv, .csv.gz or .parquet")
    column_flags(p)
    p.add_argument("--labels", metavar="FILE", help="a separate file of labels (sent after the data, or alone "
                                                    "without --data): its id and label columns are named by "
                                                    "--id-column and --label-column")
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="events per message (default 500)")
    p.add_argument("--rate", type=float, metavar="EVENTS_PER_S", help="pace the replay (default: as fast as "
                                                                      "Kafka takes it)")
    p.add_argument("--inference-topic", metavar="T")
    p.add_argument("--label-topic", metavar="T")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    connection_flags(p, redis_too=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import ReplayError, label_events, load_table, plan_columns, replay, rows_to_events
    from producers.topics import ensure_topics

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
    ensure_topics(settings.kafka, [settings.inference_topic, settings.label_topic], settings.topic_partitions,
                  timeout_s=10)
    result = replay(settings.kafka, args.model, args.model_version, events, labels,
                    settings.inference_topic, settings.label_topic, batch_size=args.batch_size, rate=args.rate)
    summary = {"model": args.model, "model_version": args.model_version, "events": result.events,
               "labels": result.labels, "messages": result.messages, "failed": result.failed,
               "seconds": round(result.seconds, 3), "features": features}
    if args.json:
        dump(summary)
    else:
        kinds = ", ".join(f"{k} ({v})" for k, v in features.items()) or "none"
        print(f"replayed {result.events} events and {result.labels} labels of model {args.model} "
              f"v{args.model_version} in {result.messages} messages ({result.seconds:.1f}s); features: {kinds}")
    if result.failed:
        print(f"driftline: error: Kafka refused {result.failed} events", file=sys.stderr)
        return 1
    return 0
