"""The report data of a synthetic classifier: drifting inputs, then a drop in accuracy and a retrain trigger.

Built the way a worker would keep it: per window of events, a drift statistic
(PSI against the reference bins, numpy) and the missing rate go into
``Timeline`` series; production values are counted on the reference's bin
edges (``numpy.histogram``) or per category. Used by the report's tests and
by ``benchmarks/report.py``.
"""

from __future__ import annotations

import numpy as np

from detectors.timeline import Timeline
from stream_processors.report import (AlertRow, Decision, Distribution, Episode, FeatureSection, OutputSection,
                                      PerformanceSeries, ReportData)

WINDOW = 500          # events per drift-statistic point
LABEL_WINDOW = 1000   # labels per realized-accuracy point
BINS = 10
PSI_THRESHOLD = 0.1   # PSI * WINDOW is about chi-square(BINS - 1) without drift: 0.1 is far in its tail
COOLDOWN_WINDOWS = 10
CATEGORIES = ("north", "south", "east", "west")
HOSTILE_NAME = '<script>alert("feature")</script>'
HOSTILE_CATEGORY = "<img src=x onerror=f()>"  # short enough to stay whole in a tick label


def _psi(counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSI of each row of window counts against the reference shares (both smoothed by 1e-4)."""
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) + 1e-4
    q = reference / reference.sum() + 1e-4
    return ((p - q) * np.log(p / q)).sum(axis=1)


def _episodes(psi: np.ndarray, ids: list[str]) -> tuple[Episode, ...]:
    episodes, start, last = [], None, None
    for w, value in enumerate(psi):
        if value > PSI_THRESHOLD:
            start = w if start is None else start
            last = w
        elif start is not None and w - last >= COOLDOWN_WINDOWS:
            episodes.append(Episode((start + 1) * WINDOW - 1, (w + 1) * WINDOW - 1, ids[start], ids[w], "psi",
                                    "critical"))
            start = None
    if start is not None:
        episodes.append(Episode((start + 1) * WINDOW - 1, None, ids[start], None, "psi", "critical"))
    return tuple(episodes)


def _event_id(index: int) -> str:
    return f"ev-{index:08d}"


def synthetic_report(n_events: int = 100_000, n_features: int = 20, seed: int = 0, capacity: int = 128,
                     hostile: bool = False, generated_at: float = 1_764_158_400.0) -> ReportData:
    """A 20-feature model: features 0-2 shift by 0.3, 0.6, 1 sd from half-way, feature 3 doubles its
    variance for a quarter of the run, feature 4's missing rate goes from 2% to 10%, categorical
    feature 0 changes its frequencies and categorical feature 1 gets an unseen category; accuracy
    falls from 0.9 to 0.8 at 70% of the run, which triggers a retrain."""
    rng = np.random.default_rng(seed)
    n_events -= n_events % WINDOW
    windows = n_events // WINDOW
    window_ids = [_event_id((w + 1) * WINDOW - 1) for w in range(windows)]
    half, three_quarters = n_events // 2, 3 * n_events // 4
    n_categorical = max(n_features * 3 // 10, 2)
    sections, alerts = [], []
    at = np.arange(n_events)
    for j in range(n_features):
        categorical = j >= n_features - n_categorical
        c = j - (n_features - n_categorical)
        name = (f"region_{c}" if categorical else f"x{j:02d}")
        if hostile and j == 1:
            name = HOSTILE_NAME
        statistic, missing = Timeline(capacity, "max"), Timeline(capacity, "mean")
        if categorical:
            probs = np.array([0.4, 0.3, 0.2, 0.1])
            reference = rng.multinomial(50_000, probs).astype(float)
            drifted = np.array([0.25, 0.25, 0.25, 0.25]) if c == 0 else probs
            codes = np.where(at < half, rng.choice(4, n_events, p=probs), rng.choice(4, n_events, p=drifted))
            names = list(CATEGORIES)
            if c == 1:  # an unseen category in 3% of the last quarter
                names.append(HOSTILE_CATEGORY if hostile else "unknown")
                codes = np.where((at >= three_quarters) & (rng.random(n_events) < 0.03), 4, codes)
                reference = np.r_[reference, 0.0]
            bins = len(names)
            present = np.ones(n_events, dtype=bool)
            counts = np.bincount(codes, minlength=bins).astype(float)
            window_counts = np.bincount((at // WINDOW) * bins + codes, minlength=windows * bins).reshape(windows,
                                                                                                           bins)
            distribution = Distribution(tuple(counts), tuple(reference), categories=tuple(names))
            unseen = ((names[4], int(counts[4])),) if c == 1 else ()
        else:
            ref_values = rng.normal(0, 1, 50_000)
            edges = np.quantile(ref_values, np.linspace(0, 1, BINS + 1))
            reference, _ = np.histogram(ref_values, edges)
            shift = {0: 0.3, 1: 0.6, 2: 1.0}.get(j, 0.0)
            scale = np.where((j == 3) & (at >= half) & (at < three_quarters), 2.0, 1.0)
            values = rng.normal(0, 1, n_events) * scale + np.where(at >= half, shift, 0.0)
            miss_rate = np.where((j == 4) & (at >= 6 * n_events // 10), 0.10, 0.02)
            present = rng.random(n_events) >= miss_rate
            # values beyond the reference's range are counted in its outer bins
            bin_of = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, BINS - 1)
            counts, _ = np.histogram(np.clip(values[present], edges[0], edges[-1]), edges)
            window_counts = np.bincount((at[present] // WINDOW) * BINS + bin_of[present],
                                        minlength=windows * BINS).reshape(windows, BINS)
            distribution = Distribution(tuple(counts.astype(float)), tuple(reference.astype(float)),
                                        edges=tuple(edges))
            unseen = ()
        psi = _psi(window_counts.astype(float), np.asarray(reference, dtype=float))
        window_missing = 1.0 - present.reshape(windows, WINDOW).mean(axis=1)
        for w in range(windows):
            statistic.update((w + 1) * WINDOW - 1, float(psi[w]))
            missing.update((w + 1) * WINDOW - 1, float(window_missing[w]))
        episodes = _episodes(psi, window_ids)
        for e in episodes:
            firing = {"id": f"{j:02d}{e.started_at:030d}", "status": "firing", "type": "drift", "severity": "critical",
                      "detector": "psi", "feature": name, "statistic": float(psi[e.started_at // WINDOW]),
                      "threshold": PSI_THRESHOLD, "started_at_event": e.started_at_event,
                      "created_at": generated_at - n_events + e.started_at,
                      "evidence": {"last_event_id": e.started_at_event}}
            alerts.append(AlertRow.from_alert(firing))
            if e.ended_at is not None:
                alerts.append(AlertRow.from_alert({**firing, "id": f"{j:02d}{e.ended_at:030d}", "status": "resolved",
                                                   "statistic": COOLDOWN_WINDOWS * WINDOW,
                                                   "threshold": COOLDOWN_WINDOWS * WINDOW,
                                                   "created_at": generated_at - n_events + e.ended_at,
                                                   "evidence": {"last_event_id": e.ended_at_event}}))
        sections.append(FeatureSection(
            name=name, kind="categorical" if categorical else "numeric", distribution=distribution,
            statistic=tuple(statistic.points()), threshold=PSI_THRESHOLD, statistic_name="PSI (window of 500)",
            episodes=episodes, missing_rate=float(1.0 - present.mean()),
            reference_missing_rate=0.0 if categorical else 0.02, unseen_categories=unseen))

    drop_at = 7 * n_events // 10
    correct = rng.random(n_events) < np.where(at < drop_at, 0.9, 0.8)
    scores = rng.beta(18, 2, n_events)
    realized, estimated = Timeline(capacity, "min"), Timeline(capacity, "mean")
    accuracy = correct[: n_events // LABEL_WINDOW * LABEL_WINDOW].reshape(-1, LABEL_WINDOW).mean(axis=1)
    for w, value in enumerate(accuracy):
        realized.update((w + 1) * LABEL_WINDOW - 1, float(value))
    confidence = np.maximum(scores, 1 - scores).reshape(windows, WINDOW).mean(axis=1)
    for w, value in enumerate(confidence):
        estimated.update((w + 1) * WINDOW - 1, float(value))
    bound = 0.9 - max(0.02, 3 * np.sqrt(0.9 * 0.1 / LABEL_WINDOW))
    first_low = int(np.argmax(accuracy < bound)) if (accuracy < bound).any() else len(accuracy) - 1
    fired_at = (first_low + 1) * LABEL_WINDOW - 1
    performance_alert = {"id": "perf" + "0" * 28, "status": "firing", "type": "performance", "severity": "critical",
                         "detector": "realized_accuracy", "feature": None, "statistic": float(accuracy[first_low]),
                         "threshold": bound, "started_at_event": _event_id(fired_at),
                         "created_at": generated_at - n_events + fired_at,
                         "evidence": {"last_event_id": _event_id(fired_at)}}
    trigger = {"id": "trig" + "0" * 28, "status": "firing", "type": "retrain", "severity": "critical",
               "detector": "retrain_policy", "feature": None, "statistic": 1.0, "threshold": 1.0,
               "started_at_event": _event_id(fired_at), "created_at": generated_at - n_events + fired_at,
               "evidence": {"last_event_id": _event_id(fired_at), "rule": "performance",
                            "explanation": f"performance fell past its bound: realized_accuracy "
                                           f"{accuracy[first_low]:.4g} (threshold {bound:.4g})",
                            "reasons": [{"id": performance_alert["id"], "type": "performance", "feature": None,
                                         "detector": "realized_accuracy", "statistic": float(accuracy[first_low]),
                                         "threshold": bound}],
                            "performance": {"realized": {"accuracy": {"value": float(accuracy[-1]),
                                                                      "reference": 0.9}},
                                            "estimated": {"accuracy": {"value": float(confidence[-1]),
                                                                       "reference": 0.9}}}}}
    alerts += [AlertRow.from_alert(performance_alert), AlertRow.from_alert(trigger)]
    predictions = (scores >= 0.5).astype(int)
    ref_scores = rng.beta(18, 2, 50_000)
    score_edges = np.linspace(0, 1, 21)
    outputs = (
        OutputSection("__prediction__", Distribution(
            tuple(np.bincount(predictions, minlength=2).astype(float)),
            tuple(np.bincount((ref_scores >= 0.5).astype(int), minlength=2).astype(float)), categories=("0", "1"))),
        OutputSection("__score__", Distribution(
            tuple(np.histogram(scores, score_edges)[0].astype(float)),
            tuple(np.histogram(ref_scores, score_edges)[0].astype(float)), edges=tuple(score_edges))),
    )
    performance = (PerformanceSeries("accuracy", realized=tuple(realized.points()),
                                     estimated=tuple(estimated.points()), reference=0.9, bound=bound),)
    model = "credit <b>&amp;</b>" if hostile else "credit"
    return ReportData(model=model, model_version="1", scenario="reference", events=n_events,
                      generated_at=generated_at, decision=Decision.from_trigger(trigger), features=tuple(sections),
                      outputs=outputs, performance=performance, alerts=tuple(alerts), period=(0, n_events - 1))
