"""``ReportData`` from what a worker keeps: a model version's monitor (its report series, episodes, verdict) and
the alerts of the period read from the control topic."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from detectors.model.columns import NUMERIC, PREDICTION, SCORE
from stream_processors.report.data import (AlertRow, Decision, Distribution, Episode, FeatureSection,
                                           OutputSection, PerformanceSeries, ReportData)

if TYPE_CHECKING:
    from detectors.model.monitor import ModelMonitor

__all__ = ["decision_from_verdict", "report_from_state"]


def decision_from_verdict(verdict: dict) -> Decision:
    """The report's decision: the retrain policy's verdict (``ModelMonitor.policy.verdict``) as it stands."""
    explanation = verdict.get("explanation", "")
    if verdict.get("evidence"):
        explanation = f"{explanation}. Now: {verdict['evidence']}"
    evidence = {"explanation": explanation, "rule": verdict.get("rule"), "reasons": verdict.get("reasons") or [],
                "performance": verdict.get("performance") or {}, "last_event_id": verdict.get("since_event")}
    decision = Decision.from_trigger({"evidence": evidence, "created_at": verdict.get("since_time")})
    if verdict["verdict"] == "continue":
        decision = replace(decision, verdict="continue")
    return decision


def report_from_state(monitor: ModelMonitor, alerts: list[dict], generated_at: float,
                      last: int | None = None) -> ReportData:
    """The report of one model version; ``alerts`` are the control-topic messages of this model (any version:
    those of other versions are left out here). With ``last``, the series cover the last ``last`` events and
    the alerts those decided within them."""
    features, outputs = [], []
    threshold = -math.log10(monitor.window_threshold())
    for name in sorted(monitor.kinds):
        test = monitor.window_tests.get(name)
        if test is None:
            continue  # profiled but not seen yet
        distribution, unseen = _distribution(monitor, name)
        if name in (PREDICTION, SCORE):
            outputs.append(OutputSection(name, distribution))
            continue
        series = monitor.series.statistic.get(name)
        missing = monitor.series.missing.get(name)
        summary = monitor.numeric.get(name) or monitor.categorical.get(name)
        seen = summary.count + summary.missing
        reference = test.reference
        features.append(FeatureSection(
            name=name, kind="numeric" if monitor.kinds[name] == NUMERIC else "categorical",
            distribution=distribution, statistic=tuple(series.points()) if series else (), threshold=threshold,
            statistic_name=f"-log10 p, chi-square per window of {test.window_size}",
            episodes=_episodes(monitor, name),
            missing_rate=summary.missing / seen if seen else None,
            reference_missing_rate=reference["missing"] / reference["total"] if reference and reference["total"]
            else None,
            unseen_categories=unseen, missing=tuple(missing.points()) if missing else ()))
    alerts_shown, skipped = _alerts_of(monitor, alerts, last)
    data = ReportData(model=monitor.model, model_version=monitor.model_version, scenario=monitor.scenario,
                      events=monitor.events, generated_at=generated_at,
                      decision=decision_from_verdict(monitor.policy.verdict), features=tuple(features),
                      outputs=tuple(outputs), performance=_performance(monitor), alerts=alerts_shown,
                      period=(0, max(monitor.events - 1, 0)), skipped_alerts=skipped)
    return data.last(last) if last else data


def _alerts_of(monitor: ModelMonitor, alerts: list, last: int | None) -> tuple[tuple[AlertRow, ...], int]:
    """The rows of this model version's alerts (of the period with ``last``), and how many of its messages were
    malformed and left out; messages that are not objects are counted too, since their model is unknown."""
    rows, skipped = [], 0
    for alert in alerts:
        if isinstance(alert, dict) and (alert.get("model") != monitor.model
                                        or alert.get("model_version") != monitor.model_version):
            continue
        try:
            row = AlertRow.from_alert(alert)
        except ValueError:  # not an object, or a field of the wrong type
            skipped += 1
            continue
        seen = _seen(alert)
        if not last or seen is None or seen > monitor.events - last:
            rows.append(row)
    return tuple(rows), skipped


def _seen(alert: dict) -> int | None:
    """Events the deciding detector or window had seen (``evidence.events_seen``): where an alert falls in the
    period of ``--last``; None when it is not a finite number."""
    seen = (alert.get("evidence") or {}).get("events_seen")
    if isinstance(seen, bool) or not isinstance(seen, (int, float)) or not math.isfinite(seen):
        return None
    return int(seen)


def _distribution(monitor: ModelMonitor, name: str) -> tuple[Distribution, tuple[tuple[str, int], ...]]:
    test, reference = monitor.window_tests[name], monitor.window_tests[name].reference
    if monitor.kinds[name] == NUMERIC:
        inner = test.edges
        counts = monitor.series.counts.get(name)
        if not inner or counts is None or len(counts) != len(inner) + 1:
            total = monitor.numeric[name].count if name in monitor.numeric else 0
            return Distribution((float(total),), categories=("all values (bins not fixed yet)",)), ()
        width = (inner[-1] - inner[0]) or 1.0
        lo = reference["min"] if reference and reference.get("min") is not None and reference["min"] < inner[0] \
            else inner[0] - 0.1 * width
        hi = reference["max"] if reference and reference.get("max") is not None and reference["max"] > inner[-1] \
            else inner[-1] + 0.1 * width
        ref = tuple(float(c) for c in reference["counts"]) if reference else None
        if ref is not None and len(ref) != len(counts):
            ref = None
        return Distribution(tuple(float(c) for c in counts), ref, edges=(lo, *inner, hi)), ()
    frequencies = monitor.categorical[name].frequencies if name in monitor.categorical else {}
    known = test.categories
    names = list(known) + sorted((c for c in frequencies if c not in set(known)), key=lambda c: -frequencies[c])
    production = tuple(float(frequencies.get(c, 0)) for c in names)
    ref = None
    if reference and len(reference["counts"]) >= len(known):
        ref = tuple(float(c) for c in reference["counts"][:len(known)]) + (0.0,) * (len(names) - len(known))
    unseen = tuple((c, int(frequencies[c])) for c in names[len(known):]) if reference else ()
    if not names:
        return Distribution((0.0,), categories=("no values yet",)), ()
    return Distribution(production, ref, categories=tuple(str(c) for c in names)), unseen


def _episodes(monitor: ModelMonitor, name: str) -> tuple[Episode, ...]:
    def of(e: dict, ended: bool) -> Episode:
        return Episode(started_at=int(e["started_at"]), ended_at=int(e["ended_at"]) if ended else None,
                       started_at_event=e.get("started_at_event") or None,
                       ended_at_event=e.get("ended_at_event") if ended else None,
                       detector=e.get("detector", ""), severity=e.get("severity") or "warning")
    closed = [of(e, True) for e in monitor.closed_episodes
              if e.get("type") == "drift" and e.get("feature") == name and e.get("clock", "events") == "events"]
    current = monitor.episodes.get(name)
    if current and current.get("type") == "drift":
        closed.append(of(current, False))
    return tuple(closed)


def _performance(monitor: ModelMonitor) -> tuple[PerformanceSeries, ...]:
    series, perf = monitor.series, monitor.performance
    metric = series.metric or ("mae" if perf.task == "regression" else "accuracy")
    realized = tuple(series.realized.points()) if series.realized else ()
    estimated = tuple(series.estimated.points()) if metric == "accuracy" else ()
    if not realized and not estimated:
        return ()
    reference = (perf.baseline or {}).get(metric)
    if reference is None and not realized:
        reference = perf.estimate_baseline
    bound = perf.bound(metric, monitor.params.performance.window) if perf.baseline and metric in perf.baseline \
        else None
    return (PerformanceSeries(metric, realized=realized, estimated=estimated, reference=reference, bound=bound,
                              higher_is_better=metric != "mae"),)
