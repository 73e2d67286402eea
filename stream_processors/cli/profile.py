"""``driftline profile``: build a reference profile from training data and register it (Scenario I)."""

from __future__ import annotations

import argparse

from stream_processors.cli.flags import ENV_HELP, column_flags, connection_flags, dump
from stream_processors.config import Settings

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="build a reference profile from training data and register it",
                       description="Profile training data for one model version (Scenario I): per numeric "
                                   "feature moments, quantiles, histogram bins and the online detectors' "
                                   "baseline; per categorical or boolean feature frequencies; the prediction "
                                   "and score distributions; labels and the model's performance on them where "
                                   "a label column exists. The profile is registered in Redis and on the "
                                   "compacted topic driftline.profiles; workers compare that version's "
                                   "production events with it from their next batch.",
                       epilog="Example: driftline profile --model credit --model-version 1 --data train.csv. "
                              + ENV_HELP)
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--model-version", required=True, help="model version the profile is for")
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .csv.gz or .parquet")
    column_flags(p)
    p.add_argument("--window-size", type=int, metavar="N",
                   help="events per comparison window (default 500, DRIFTLINE_WINDOW_SIZE)")
    p.add_argument("--json", action="store_true", help="print what was profiled as JSON")
    connection_flags(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import load_table, plan_columns
    from stream_processors.profile_registry import profile_from_table, register_profile
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
        dump(summary)
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
