"""``driftline status``: a model's statistics, episodes and performance, read from Redis; or, without a
model, one page of all model versions.

Its cost does not grow with the number of models beyond one read of the models registry: one model's status
loads that model's state only (with ``--model-version``, not even the registry), and the list loads the
states of the page it shows, never every state.
"""

from __future__ import annotations

import argparse
import sys
import time

from stream_processors.cli.flags import ENV_HELP, connection_flags, dump, model_flags
from stream_processors.errors import DriftlineError, UnknownModel
from stream_processors.config import Settings
from stream_processors.display import printable
from stream_processors.state import RedisStateStore

__all__ = ["SORTS", "add_parser", "decision_lines", "list_models", "load_monitor", "model_page", "model_status",
           "print_page", "print_status", "run"]

SORTS = ("recent", "stale", "name", "events")
"""Orders of the model list: last update newest first or oldest first, model name, most events first."""


def load_monitor(settings: Settings, model: str, version: str | None = None):
    """The saved monitor of one model version (its latest-updated version unless one is named), the store it
    came from and the versions seen; ``UnknownModel`` names the models or versions there are."""
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params

    store = RedisStateStore(settings.redis, settings.app_id)
    store.ping()
    if version is not None:  # one key read; the registry only to explain an unknown model or version
        state = store.load([(model, version)])[(model, version)]
        if state is None:
            _unknown(store.models(), settings.app_id, model, version, store)
        versions = [version]
    else:  # the model's own registry entries; the whole registry only to explain an unknown model
        seen = store.versions_of(model)
        if not seen:
            _unknown(store.models(), settings.app_id, model, None, store)
        version = max(seen, key=seen.get)
        versions = sorted(seen)
        state = store.load([(model, version)])[(model, version)]
    try:
        monitor = ModelMonitor.from_dict(state, logic_params(settings).monitor)
    except BaseException as exc:  # noqa: BLE001 - damaged state (river's panics included) is reported, not raised
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise DriftlineError(f"the saved state of model {model!r} version {version!r} cannot be read "
                             f"({type(exc).__name__}); the worker quarantines it and starts the version afresh "
                             "at its next event") from None
    return monitor, store, versions


AWAITING_MOVE = ("no model is found under key layout 3 yet: the keys of key layout 2 there await a worker start "
                 "to move them to layout 3")


def _unknown(known: dict[tuple[str, str], float], app_id: str, model: str, version: str | None,
             store: RedisStateStore) -> None:
    """Raise ``UnknownModel`` naming what there is; returns if the registry knows the version after all (its
    state is then missing, which ``ModelMonitor.from_dict`` reports)."""
    versions = sorted(v for m, v in known if m == model)
    if version in versions:
        return
    if version is not None and versions:
        raise UnknownModel(f"model {model!r} has no version {version!r}; versions seen: {versions}")
    names = sorted({m for m, _ in known})
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more (`driftline status` lists them)"
                                     if len(names) > 20 else "")
    hint = f"known models: {shown}" if names else "no model has been seen yet"
    if not names and store.awaiting_move():
        hint = AWAITING_MOVE
    raise UnknownModel(f"unknown model {model!r} for worker app {app_id!r}; {hint}")


def list_models(summaries: dict[tuple[str, str], dict], sort: str, limit: int) -> list[tuple[str, str]]:
    """The model versions of one page, in the order asked for."""
    orders = {
        "recent": lambda kv: (-kv[1]["updated"], kv[0]),
        "stale": lambda kv: (kv[1]["updated"], kv[0]),
        "name": lambda kv: kv[0],
        "events": lambda kv: (-kv[1]["events"], kv[0]),
    }
    return [key for key, _summary in sorted(summaries.items(), key=orders[sort])[:max(0, limit)]]


def model_page(settings: Settings, sort: str = "recent", limit: int = 20, now: float | None = None) -> dict:
    """One page of model versions with their decision and drifting features: one read of the registry, and
    the states of the page only."""
    from detectors.model.monitor import ModelMonitor
    from stream_processors.batch import logic_params

    store = RedisStateStore(settings.redis, settings.app_id)
    store.ping()
    summaries = store.model_summaries()
    page = list_models(summaries, sort, limit)
    states = store.load(page) if page else {}
    params = logic_params(settings).monitor
    rows = []
    for key in page:
        row = {"model": key[0], "model_version": key[1], "events": summaries[key]["events"],
               "updated": summaries[key]["updated"], "decision": None, "drifting": None}
        try:
            monitor = ModelMonitor.from_dict(states.get(key), params)
            row["decision"] = monitor.policy.verdict["verdict"]
            row["drifting"] = sorted(f for f, flag in monitor.drifting().items() if flag)
        except BaseException as exc:  # noqa: BLE001 - one damaged state must not hide the rest of the page
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        rows.append(row)
    return {"total": len(summaries), "sort": sort, "limit": limit,
            "now": time.time() if now is None else now, "models": rows,
            "awaiting_move": not summaries and store.awaiting_move()}


def print_page(page: dict, out=sys.stdout) -> None:
    total, rows = page["total"], page["models"]
    if not total:
        out.write(AWAITING_MOVE + "\n" if page.get("awaiting_move") else "no model has been seen yet\n")
        return
    out.write(f"{len(rows)} of {total} model versions, sorted by {page['sort']}"
              f"{'' if len(rows) == total else ' (--limit for more, --sort for another order)'}; "
              "`driftline status --model M` for one model's statistics\n")
    out.write(f"  {'MODEL':24} {'VERSION':10} {'DECISION':9} {'EVENTS':>10} {'UPDATED':>10}  DRIFTING\n")
    for r in rows:
        age = _age(page["now"] - r["updated"])
        decision = (r["decision"] or "unreadable").upper()
        drifting = "-" if r["drifting"] is None else (", ".join(printable(f) for f in r["drifting"]) or "none")
        out.write(f"  {printable(r['model']):24} {printable(r['model_version']):10} {decision:9} {r['events']:>10} "
                  f"{age:>10}  {drifting}\n")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def model_status(settings: Settings, model: str, version: str | None = None) -> dict:
    """The status of one model: its latest-updated version unless one is named."""
    monitor, store, versions = load_monitor(settings, model, version)
    status = monitor.describe()
    # the model's own fields of its partition's hashes: the cost does not grow with the number of models
    status["quarantined"] = store.quarantine_of(model, monitor.model_version)
    status["versions"] = versions
    status["labels"] = store.model_label_counts(model)
    return status


def decision_lines(decision: dict) -> list[str]:
    """The decision as ``driftline status`` prints it first."""
    since = "the first event" if decision.get("since_event") is None and not decision.get("since_at") else \
        f"event {printable(decision.get('since_event') or '?')} (after {decision.get('since_at', 0)} events)"
    if decision.get("since_time"):
        since += time.strftime(", %Y-%m-%d %H:%M:%S UTC", time.gmtime(decision["since_time"]))
    rule = f" (rule {printable(decision['rule'])})" if decision.get("rule") else ""
    lines = [f"DECISION: {decision['verdict'].upper()}{rule} since {since}", f"  {printable(decision['explanation'])}"]
    if decision.get("evidence"):
        lines.append(f"  now: {printable(decision['evidence'])}")
    for r in decision.get("reasons") or []:
        lines.append(f"  because of {r['type']} alert {r['id']}: {r['detector']}"
                     f"{' on ' + printable(r['feature']) if r.get('feature') else ''} {r['statistic']:.4g} "
                     f"(threshold {r['threshold']:.4g})")
    return lines


def _count(labels: dict, kind: str) -> str:
    """A label count as printed: ``?`` for one damaged in Redis (``model_label_counts`` reads it as None)."""
    value = labels.get(kind, 0)
    return "?" if value is None else str(value)


def print_status(status: dict, out=sys.stdout) -> None:
    if status.get("decision"):
        for line in decision_lines(status["decision"]):
            out.write(line + "\n")
    scenario = "against its reference profile" if status["scenario"] == "reference" else "no reference profile"
    out.write(f"model {printable(status['model'])} version {printable(status['model_version'])}: "
              f"{status['events']} events, {scenario} "
              f"(versions seen: {', '.join(printable(v) for v in status['versions'])}); "
              f"last event {printable(status['last_event_id'])}\n")
    quarantined = status.get("quarantined")
    if quarantined:
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(quarantined["at"]))
        out.write(f"  its saved {quarantined['record']} could not be loaded at {at} "
                  f"({printable(quarantined['error'])}): it was quarantined (sha256 {quarantined['sha256'][:12]}…) "
                  "and the statistics restarted then\n")
    perf, labels = status.get("performance") or {}, status.get("labels") or {}
    damaged = [kind for kind in ("joined", "pending", "unmatched") if kind in labels and labels[kind] is None]
    if labels.get("joined") or labels.get("pending") or damaged or perf.get("estimated_accuracy") is not None:
        joined, pending, unmatched = (_count(labels, kind) for kind in ("joined", "pending", "unmatched"))
        out.write(f"  labels: {joined} joined (all versions), {pending} waiting for their prediction, "
                  f"{unmatched} never matched\n")
        if damaged:
            repair = {"pending": "the waiting count is recounted at the model's next batch",
                      "joined": "the joined count restarts from its next change (the earlier total is lost)",
                      "unmatched": "the unmatched count restarts from its next change (the earlier total is lost)"}
            out.write(f"  damaged in Redis (not a whole number of at most 18 digits, as Driftline writes them): "
                      f"the {', '.join(damaged)} label count{'s' if len(damaged) > 1 else ''}; "
                      f"{'; '.join(repair[kind] for kind in damaged)}\n")
        if perf.get("windows"):
            last = perf["windows"][-1]
            figures = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "labels")
            out.write(f"  performance ({perf['task']}), last window of {last['labels']} labels: {figures}\n")
        if perf.get("baseline"):
            base = ", ".join(f"{k} {v:.4g}" for k, v in perf["baseline"].items())
            out.write(f"  baseline (from the {perf['baseline_from']}): {base}\n")
        if perf.get("estimated_accuracy") is not None:
            out.write(f"  estimated accuracy from scores (last window): {perf['estimated_accuracy']:.4f}\n")
    rows = dict(status["features"])
    if status.get("prediction"):
        rows["(prediction)"] = status["prediction"]
    if status.get("score"):
        rows["(score)"] = status["score"]
    for name, f in rows.items():
        if f["kind"] == "numeric":
            out.write(f"  {printable(name):24} numeric     n={f['count']:<8} missing={f['missing']:<6} "
                      f"mean={_fmt(f['mean'])} std={_fmt(f['std'])} min={_fmt(f['min'])} "
                      f"p50={_fmt(f['p50'])} max={_fmt(f['max'])}")
        else:
            top = sorted(f["frequencies"].items(), key=lambda kv: -kv[1])[:4]
            shown = ", ".join(f"{printable(k)}: {v}" for k, v in top)
            out.write(f"  {printable(name):24} {f['kind']:11} n={f['count']:<8} missing={f['missing']:<6} {shown}")
        if f.get("type_mismatches"):
            out.write(f" type_mismatches={f['type_mismatches']}")
        if "drifting_since_event" in f:  # None: the episode came from a state that kept no start (format 3)
            since = f["drifting_since_event"]
            out.write(f"  [drifting since event {printable(since)}]" if since
                      else "  [drifting; its start was not kept]")
        out.write("\n")
    _print_episodes(status.get("episodes") or {}, perf.get("improvements") or [], out)


def _print_episodes(episodes: dict, improvements: list[dict], out) -> None:
    def what(e: dict) -> str:
        return f"{e['type']} {printable(e.get('feature') or '(model)')} by {e['detector']}"
    if episodes.get("open"):
        out.write("  open episodes:\n")
        for e in episodes["open"]:
            out.write(f"    FIRING   {what(e)}: since event {printable(e['started_at_event'] or '?')} "
                      f"({e['firings']} firing(s))\n")
    if episodes.get("closed"):
        out.write("  closed episodes (latest last):\n")
        for e in episodes["closed"]:
            out.write(f"    RESOLVED {what(e)}: began at event {printable(e['started_at_event'] or '?')}, "
                      f"ended at event {printable(e['ended_at_event'])}\n")
    for i in improvements[-3:]:
        out.write(f"  improvement (not an alert): {i['detector']} {i['statistic']:.4g} past {i['threshold']:.4g} "
                  f"at event {printable(i['event_id'])}\n")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _positive(text: str) -> int:
    """``--limit``: a whole number of at least 1 (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of model versions, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="show a model's decision and statistics from Redis, or list the models",
                       description="With --model: show what Driftline decides for a model version (continue or "
                                   "retrain, why, since when: the retrain policy's current verdict), then the "
                                   "statistics the workers keep: per feature count, missing, mean, std, min, max "
                                   "and quantiles, or category frequencies. Without --model: one page of the "
                                   "model versions (how many there are in all, then per version its decision, "
                                   "events, last update and drifting features), the most recently updated first; "
                                   "--sort stale puts first the versions that stopped receiving events.",
                       epilog=ENV_HELP)
    model_flags(p, required=False)
    p.add_argument("--limit", type=_positive, default=20, metavar="N",
                   help="without --model: how many model versions to list (default: 20)")
    p.add_argument("--sort", choices=SORTS, default="recent",
                   help="without --model: recent (last update, newest first; the default), stale (oldest "
                        "first), name, or events (most first)")
    p.add_argument("--json", action="store_true", help="print the status as one JSON object")
    connection_flags(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.model is None:
        if args.model_version is not None:
            raise DriftlineError("--model-version needs --model")
        page = model_page(settings, args.sort, args.limit)
        dump(page) if args.json else print_page(page)
        return 0
    status = model_status(settings, args.model, args.model_version)
    if args.json:
        dump(status)
    else:
        print_status(status)
    return 0
