"""Episodes (firing, then resolved), degradation-only performance alerts, evidence-backed retrain triggers,
and the saved forms they change."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from stream_processors.batch import logic_params
from detectors.performance import same_class
from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.alerts import finding_alert
from detectors.model.label_join import Joined
from detectors.model.monitor import Finding, ModelMonitor, alert_id
from detectors.model.performance_tracker import PerformanceTracker
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.cli.alerts import format_alert
from detectors.model.retrain_policy import RetrainPolicy
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

SETTINGS = Settings()


def _drift(state, feature, event_id, statistic=9.0):
    return Finding("drift", state.model, state.model_version, feature, "cusum", statistic, 7.0, event_id,
                   state.events, state.scenario, "critical", {"position": -1})


def _joined(predictions, labels, start=0):
    return [Joined(f"e{start + i}", "1", p, None, y, 0.0) for i, (p, y) in enumerate(zip(predictions, labels))]


def test_an_episode_fires_once_holds_repeats_and_resolves_after_a_quiet_stretch():
    state = ModelMonitor("m", "1", logic_params(SETTINGS.replace(cooldown_events=100)).monitor)
    [opened] = state._episode(_drift(state, "x", "e10"), at=10)
    assert opened.status == "firing" and opened.episode_id == opened.id and opened.started_at_event == "e10"
    assert state._episode(_drift(state, "x", "e60"), at=60) == []          # within the episode: held back
    assert state.drifting() == {} and state.episodes["x"]["firings"] == 2  # (x has no window test here)
    assert state._resolve("events", 100, 159, [f"e{i}" for i in range(101, 160)]) == []  # 99 quiet events
    [resolved] = state._resolve("events", 159, 170, [f"e{i}" for i in range(160, 171)])
    assert (resolved.status, resolved.episode_id, resolved.started_at_event) == ("resolved", opened.id, "e10")
    assert resolved.last_event_id == "e160" and resolved.statistic == 100.0  # 60 + 100: the stretch's end
    assert resolved.id != opened.id
    assert resolved.id == alert_id("drift", "m", "1", "x", "cusum", "e160", "resolved", opened.id)
    assert not state.episodes and state.closed_episodes[-1]["ended_at_event"] == "e160"
    [again] = state._episode(_drift(state, "x", "e400"), at=400)           # a later firing: a new episode
    assert again.status == "firing" and again.episode_id != opened.id


def test_a_firing_after_the_quiet_stretch_resolves_the_old_episode_first():
    state = ModelMonitor("m", "1", logic_params(SETTINGS.replace(cooldown_events=100)).monitor)
    [first] = state._episode(_drift(state, "x", "e10"), at=10)
    resolved, second = state._episode(_drift(state, "x", "e200"), at=200)
    assert (resolved.status, resolved.episode_id) == ("resolved", first.id)
    assert (second.status, second.episode_id) == ("firing", second.id)


def test_resolved_messages_have_the_schema_and_print_distinctly():
    state = ModelMonitor("m", "1", logic_params(SETTINGS.replace(cooldown_events=5)).monitor)
    [opened] = state._episode(_drift(state, "x", "e1"), at=1)
    [resolved] = state._resolve("events", 1, 6, ["e2", "e3", "e4", "e5", "e6"])
    firing, done = finding_alert(opened, 1.0), finding_alert(resolved, 2.0)
    assert (firing["status"], firing["episode_id"], firing["started_at_event"]) == ("firing", firing["id"], "e1")
    assert (done["status"], done["episode_id"], done["started_at_event"]) == ("resolved", firing["id"], "e1")
    assert done["evidence"]["last_event_id"] == "e6" and "position" not in done["evidence"]
    assert " RESOLVED drift" in format_alert(done) and "began at event e1" in format_alert(done)
    assert "CRITICAL drift" in format_alert(firing) and "RESOLVED" not in format_alert(firing)


def _feed(frame, settings, batch=500):
    events, labels = rows_to_events(frame, plan_columns(frame), "credit")
    store, alerts = MemoryStateStore(), []
    processor = BatchProcessor(settings, store)
    for k, i in enumerate(range(0, len(events), batch)):
        out = processor.process([
            IncomingMessage("i", 0, k, encode_envelope("credit", events[i:i + batch], "1")),
            IncomingMessage("l", 0, k, encode_envelope("credit", labels[i:i + batch], None, kind="label"))])
        assert store.commit(out)
        alerts += out.alerts
    return alerts, store


def test_the_saved_state_round_trips_with_open_and_closed_episodes():
    frame = drifting_credit_data(n=12000, seed=4, shift_sigma=2.0)
    settings = SETTINGS.replace(cooldown_events=2000)
    alerts, store = _feed(frame, settings)
    saved = store.load([("credit", "1")])[("credit", "1")]
    assert saved["format"] == "driftline.model_state/7"
    state = ModelMonitor.from_dict(saved, logic_params(settings).monitor)
    assert state.to_dict() == saved
    assert state.episodes or state.closed_episodes
    opened = {a["episode_id"] for a in alerts if a["status"] == "firing"}
    assert {e["episode_id"] for e in list(state.episodes.values()) + state.closed_episodes} <= opened
    assert state.performance.to_dict() == PerformanceTracker.from_dict(saved["performance"], logic_params(SETTINGS).monitor.performance).to_dict()
    assert state.policy.to_dict() == RetrainPolicy.from_dict(saved["policy"], logic_params(SETTINGS).monitor.policy).to_dict()


def test_a_format_3_state_is_migrated():
    frame = drifting_credit_data(n=4000, seed=1)
    _, store = _feed(frame, SETTINGS)
    saved = store.load([("credit", "1")])[("credit", "1")]
    old = {k: v for k, v in saved.items() if k not in ("episodes", "closed_episodes")}
    old.update(format="driftline.model_state/3",
               last_alert_at={"income": 3900, "performance:None:realized_accuracy": 3500})
    old["policy"] = {"recent_drift": {"income": 3900}, "last_trigger_at": None}
    old["performance"] = {k: v for k, v in saved["performance"].items() if k not in ("labels", "improvements")}
    old["performance"]["format"] = "driftline.performance/1"
    state = ModelMonitor.from_dict(old, logic_params(SETTINGS).monitor)
    assert state.episodes["income"]["type"] == "drift" and state.episodes["income"]["episode_id"] == ""
    assert state.episodes["performance:None:realized_accuracy"]["feature"] is None
    assert state.drifting()["income"] is True
    import io

    from stream_processors.cli.status import print_status
    out = io.StringIO()
    print_status({**state.describe(), "versions": ["1"], "labels": {}}, out)
    assert "[drifting; its start was not kept]" in [line for line in out.getvalue().splitlines()
                                                    if line.strip().startswith("income")][0]
    assert state.policy.recent_drift == {"income": [3900, ""]}
    assert state._episode(_drift(state, "income", "x"), at=4000) == []  # still holds repeats back
    # the migrated episode closes without a resolved message: no firing message carried an id for it
    assert state._resolve("events", 4000, 9000, ["y"]) == [] and "income" not in state.episodes
    assert ModelMonitor.from_dict(state.to_dict(), logic_params(SETTINGS).monitor).to_dict() == state.to_dict()


def _tracker(settings=Settings(performance_window=200, performance_baseline_windows=2)):
    return PerformanceTracker(logic_params(settings).monitor.performance)


def test_a_falling_error_is_an_improvement_and_a_rising_error_an_alert():
    rng = np.random.default_rng(11)
    predictions = rng.normal(0, 1, 20000)
    noise = rng.normal(0, 1, 20000) * np.where(np.arange(20000) < 10000, 1.0, 0.6)
    better, labels, seen = _tracker(), (predictions + noise + 1e-6).tolist(), set()
    for i in range(0, 20000, 1000):
        assert better.on_labels(_joined(predictions[i:i + 1000].tolist(), labels[i:i + 1000], i)) == []
        seen |= {i["detector"] for i in better.improvements}
    assert {"error_cusum", "realized_mae"} <= seen
    worse = _tracker()
    noise = rng.normal(0, 1, 20000) * np.where(np.arange(20000) < 10000, 1.0, 1.6)
    found = worse.on_labels(_joined(predictions.tolist(), (predictions + noise + 1e-6).tolist()))
    assert {f.detector for f in found} >= {"cusum", "realized_mae"}
    assert all(f.evidence.get("direction", "worse") == "worse" for f in found)
    mae = [f for f in found if f.detector == "realized_mae"][0]
    window = slice(mae.position - 199, mae.position + 1)
    assert mae.statistic == pytest.approx(sk.mean_absolute_error((predictions + noise)[window], predictions[window]),
                                          abs=1e-5)


def test_the_error_stream_uses_the_one_class_rule():
    tracker = _tracker()
    tracker.task = "classification"
    cases = [(True, 1), (1, "1"), ("true", True), (1.0, "1"), (False, 0), (True, 0), ("1", "0")]
    errors = [tracker._error(j) for j in _joined([p for p, _ in cases], [y for _, y in cases])]
    assert errors == [0.0 if same_class(p, y) else 1.0 for p, y in cases] == [0, 0, 0, 0, 0, 1, 1]
    # the estimate reads predicted positives the same way
    events = [{"event_id": f"e{i}", "prediction": p, "score": 0.9} for i, p in
              enumerate([True, 1, "1", "true", 1.0] * 40)]
    tracker.on_predictions(events)
    assert all(positive for _, positive in tracker._estimate_window)


def _state_with_evidence(labels):
    """A version with ``labels`` joined; a window of them measured once there are ``performance_window``."""
    state = ModelMonitor("m", "1", logic_params(SETTINGS.replace(trigger_drift_features=2)).monitor)
    state.performance.labels = labels
    if labels >= SETTINGS.performance_window:
        state.performance.history = [{"accuracy": 0.9, "labels": SETTINGS.performance_window}]
    return state


def test_a_few_labels_short_of_a_window_are_no_evidence_and_leave_the_drift_rule_on():
    state = _state_with_evidence(labels=1)
    drift = [_drift(state, f, f"e{i}") for i, f in enumerate(("a", "b", "c"))]
    [trigger] = state.policy.decide(state, drift)
    assert trigger.evidence["rule"] == "drift" and state.policy.verdict["verdict"] == "retrain"


def test_a_drift_retrain_ends_when_performance_evidence_shows_the_model_holds():
    state = _state_with_evidence(labels=0)
    drift = [_drift(state, f, f"e{i}") for i, f in enumerate(("a", "b", "c"))]
    [trigger] = state.policy.decide(state, drift)
    assert state.policy.verdict["verdict"] == "retrain"
    state.performance.labels = SETTINGS.performance_window  # labels come, a window is measured: accuracy holds
    state.performance.history = [{"accuracy": 0.9, "labels": SETTINGS.performance_window}]
    assert state.policy.decide(state, []) == []
    verdict = state.policy.verdict
    assert verdict["verdict"] == "continue" and f"retrain trigger {trigger.id}" in verdict["explanation"]
    assert "but performance holds: realized accuracy 0.9" in verdict["evidence"]


def test_drift_alone_does_not_retrain_a_model_with_performance_evidence():
    state = _state_with_evidence(labels=5000)
    drift = [_drift(state, f, f"e{i}") for i, f in enumerate(("a", "b", "c"))]
    assert state.policy.decide(state, drift) == []
    state = _state_with_evidence(labels=0)
    [trigger] = state.policy.decide(state, drift)
    assert trigger.evidence["rule"] == "drift" and trigger.evidence["performance_evidence"] is False
    assert [d["id"] for d in trigger.evidence["drift"]] == [f.id for f in drift]
    off = ModelMonitor("m", "1", logic_params(SETTINGS.replace(trigger_drift_features=2, trigger_on_drift_alone=False)).monitor)
    assert off.policy.decide(off, drift) == []


def test_a_performance_trigger_names_its_alerts_and_figures():
    state = _state_with_evidence(labels=5000)
    state.performance.baseline = {"accuracy": 0.9}
    state.performance.history = [{"accuracy": 0.7, "labels": 1000}]
    drop = Finding("performance", "m", "1", None, "realized_accuracy", 0.7, 0.87, "e9", 9, "no_reference",
                   "critical", {})
    drift = _drift(state, "a", "e5")
    [trigger] = state.policy.decide(state, [drift, drop])
    e = trigger.evidence
    assert e["rule"] == "performance" and [r["id"] for r in e["reasons"]] == [drop.id]
    assert e["drift"] == [{"feature": "a", "id": drift.id}]
    assert e["performance"]["realized"]["accuracy"] == {"value": 0.7, "reference": 0.9}
    assert "realized_accuracy 0.7 (threshold 0.87)" in e["explanation"]
    resolved = dataclasses.replace(drop, status="resolved", episode_id=drop.id)
    later = _state_with_evidence(labels=5000)
    assert later.policy.decide(later, [resolved]) == []  # a resolution is no reason to retrain


def test_status_and_metrics_follow_the_episode():
    import io

    from prometheus_client import CollectorRegistry

    from stream_processors.metrics import WorkerMetrics
    from stream_processors.batch import BatchOutcome
    from stream_processors.cli.status import print_status

    frame = drifting_credit_data(n=8000, seed=4, shift_sigma=2.0)
    settings = SETTINGS.replace(cooldown_events=1000)
    alerts, store = _feed(frame, settings)
    state = ModelMonitor.from_dict(store.load([("credit", "1")])[("credit", "1")], logic_params(settings).monitor)
    status = {**state.describe(), "versions": ["1"], "labels": {}}
    out = io.StringIO()
    print_status(status, out)
    text = out.getvalue()
    opened = [a for a in alerts if a["feature"] == "income" and a["type"] == "drift" and a["status"] == "firing"][-1]
    if "income" in state.episodes:
        assert f"[drifting since event {opened['started_at_event']}]" in text
        assert f"FIRING   drift income by {opened['detector']}: since event {opened['started_at_event']}" in text
    else:
        assert f"RESOLVED drift income by {opened['detector']}: began at event {opened['started_at_event']}" in text
    registry = CollectorRegistry()
    resolved = {**opened, "status": "resolved", "id": "r"}
    WorkerMetrics(registry).observe(BatchOutcome(alerts=[opened, resolved],
                                                 drifting={("credit", "1"): {"income": False}}), 0.01)
    value = registry.get_sample_value
    assert value("driftline_alerts_resolved_total", {"model": "credit", "type": "drift"}) == 1
    assert value("driftline_alerts_published_total", {"model": "credit", "type": "drift",
                                                       "severity": opened["severity"]}) == 1
    assert value("driftline_feature_drifting", {"model": "credit", "model_version": "1", "feature": "income"}) == 0


def test_an_improvement_is_visible_in_the_metrics():
    from prometheus_client import CollectorRegistry

    from stream_processors.metrics import WorkerMetrics
    from stream_processors.batch import BatchOutcome

    rng = np.random.default_rng(12)
    predictions = rng.normal(0, 1, 4000)
    labels = predictions + rng.normal(0, 1, 4000) * np.where(np.arange(4000) < 2000, 1.0, 0.5) + 1e-6
    tracker = _tracker(Settings(performance_window=1000, performance_baseline_windows=2))
    assert tracker.on_labels(_joined(predictions.tolist(), labels.tolist())) == []
    [(metric, kind, value, bound, better)] = [r for r in tracker.readings() if r[0] == "mae"]
    base = sk.mean_absolute_error(labels[:2000], predictions[:2000])
    assert tracker.baseline["mae"] == pytest.approx(base, rel=1e-9)
    assert value == pytest.approx(sk.mean_absolute_error(labels[3000:], predictions[3000:]), rel=1e-9)
    assert value < better < base < bound
    registry = CollectorRegistry()
    WorkerMetrics(registry).observe(BatchOutcome(performance={("m", "1"): tracker.readings()}), 0.01)
    labels_of = {"model": "m", "model_version": "1", "metric": "mae", "kind": "realized"}
    assert registry.get_sample_value("driftline_model_performance_improvement_bound", labels_of) == better
    assert registry.get_sample_value("driftline_model_performance", labels_of) == value < better


def _regrouped(events, sizes, settings, kind="inference", profile=None):
    """The ids of the alerts from ``events`` sent in messages of ``sizes`` (cycled)."""
    store = MemoryStateStore()
    if profile is not None:
        store.put_profile(profile)
    processor = BatchProcessor(settings, store)
    alerts, i, k = [], 0, 0
    while i < len(events):
        size = sizes[k % len(sizes)]
        value = encode_envelope("credit", events[i:i + size], "1" if kind == "inference" else None, kind=kind)
        out = processor.process([IncomingMessage(kind, 0, k, value)])
        assert store.commit(out)
        alerts += out.alerts
        i, k = i + size, k + 1
    return [a["id"] for a in alerts], alerts


def test_firings_and_resolutions_do_not_depend_on_how_events_are_grouped_into_messages():
    from stream_processors.profile_registry import profile_from_table
    train = drifting_credit_data(n=20000, shift_at=20000, seed=74)
    frame = drifting_credit_data(n=16000, shift_at=16000, seed=75).drop(columns=["label"])
    frame.loc[4000:7999, "tenure_years"] += 4.5  # drifts for a while, then returns
    profile = profile_from_table(train, plan_columns(train), "credit", "1", SETTINGS).to_dict()
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    runs = [_regrouped(events, sizes, SETTINGS, profile=profile) for sizes in ([500], [700], [333, 1200, 41])]
    ids, alerts = runs[0]
    assert {a["status"] for a in alerts if a["feature"] == "tenure_years"} == {"firing", "resolved"}
    for other, _ in runs[1:]:
        assert sorted(other) == sorted(ids)


def test_an_error_returning_to_normal_after_an_improvement_is_not_a_degradation():
    n, rng = 40000, np.random.default_rng(71)
    x = rng.normal(0.0, 1.0, (n, 3))
    prediction = 10.0 + 2.0 * x[:, 0] - 1.0 * x[:, 1]
    index = np.arange(n)
    noise_sd = np.select([(index >= 8000) & (index < 20000), index >= 30000], [0.83, 1.3], 1.0)
    frame = pd.DataFrame({f"x{j}": x[:, j].round(4) for j in range(3)})
    frame.insert(0, "event_id", [f"r-{i:07d}" for i in range(n)])
    frame["prediction"] = prediction.round(4)
    frame["label"] = (prediction + rng.normal(0.0, 1.0, n) * noise_sd).round(4) + 1e-5  # regression
    alerts, store = _feed(frame, SETTINGS, batch=1000)
    worse = [a for a in alerts if a["type"] in ("performance", "retrain") and a["status"] == "firing"]
    assert worse, "the real degradation from event 30000 on is alerted"
    assert min(int(a["evidence"]["last_event_id"][2:]) for a in worse) >= 30000  # better, then as before: silent
    state = ModelMonitor.from_dict(store.load([("credit", "1")])[("credit", "1")], logic_params(SETTINGS).monitor)
    assert any(i["detector"].startswith("error_") for i in state.performance.improvements)


def _profiled_run(frame, train, batch=1000):
    from stream_processors.profile_registry import profile_from_table
    profile = profile_from_table(train, plan_columns(train), "credit", "1", SETTINGS).to_dict()
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    return _regrouped(events, [batch], SETTINGS, profile=profile)[1]


def test_a_persistent_small_shift_is_one_episode_and_a_return_resolves_it():
    train = drifting_credit_data(n=20000, shift_at=20000, seed=74)
    frame = drifting_credit_data(n=60000, shift_at=4000, shifted_feature="tenure_years", shift_sigma=0.2, seed=75)
    alerts = [a for a in _profiled_run(frame.drop(columns=["label"]), train) if a["feature"] == "tenure_years"]
    # the detectors reset after each firing and fire again later than the quiet stretch: still one episode
    assert [a["status"] for a in alerts] == ["firing"]
    frame = drifting_credit_data(n=30000, shift_at=30000, seed=75).drop(columns=["label"])
    frame.loc[4000:11999, "tenure_years"] += 1.5 * 3.0
    alerts = [a for a in _profiled_run(frame, train) if a["feature"] == "tenure_years" and a["type"] == "drift"]
    assert [a["status"] for a in alerts] == ["firing", "resolved"]
    assert alerts[1]["episode_id"] == alerts[0]["id"]
    assert 12000 + SETTINGS.cooldown_events <= int(alerts[1]["evidence"]["last_event_id"][4:]) < 22000


def test_a_persistent_performance_drop_is_one_episode():
    n = 60000
    frame = drifting_credit_data(n=n, shift_at=n, seed=72)
    flip = (np.arange(n) >= 8000) & (np.random.default_rng(73).random(n) < 0.08)
    frame.loc[flip, "label"] = 1 - frame.loc[flip, "label"]
    alerts, _ = _feed(frame, SETTINGS, batch=2000)
    realized = [a["status"] for a in alerts if a["detector"] == "realized_accuracy"]
    assert realized == ["firing"]


def test_a_persistent_data_quality_finding_is_one_episode():
    train = drifting_credit_data(n=20000, shift_at=20000, seed=74)
    frame = drifting_credit_data(n=30000, shift_at=30000, seed=75).drop(columns=["label"])
    frame.loc[5000:, "tenure_years"] += 1.5 * 3.0  # some windows fall short of significance, none is normal
    alerts = [a["status"] for a in _profiled_run(frame, train)
              if a["feature"] == "tenure_years" and a["detector"] == "out_of_range"]
    assert alerts == ["firing"]


def test_a_labelled_reference_alone_is_no_performance_evidence():
    train = drifting_credit_data(n=20000, shift_at=20000, seed=74).drop(columns=["score"])
    frame = drifting_credit_data(n=30000, shift_at=30000, seed=75).drop(columns=["label", "score"])
    for column, sd in (("tenure_years", 3.0), ("n_accounts", 1.5), ("age", 11.0)):
        frame.loc[5000:, column] += 1.5 * sd
    alerts = _profiled_run(frame, train)  # no production labels, no scores: nothing speaks for performance
    [trigger] = [a for a in alerts if a["type"] == "retrain"]
    assert trigger["evidence"]["rule"] == "drift" and trigger["evidence"]["performance_evidence"] is False


def test_a_degradation_during_the_trigger_cooldown_triggers_when_it_ends_if_still_open():
    settings = SETTINGS.replace(trigger_cooldown_events=20000)
    n, delay = 40000, 15000
    frame = drifting_credit_data(n=n, shift_at=n, seed=75).drop(columns=["score"])
    for column, sd in (("tenure_years", 3.0), ("n_accounts", 1.5), ("age", 11.0)):
        frame.loc[5000:, column] += 1.5 * sd
    flip = (np.arange(n) >= 5000) & (np.random.default_rng(2).random(n) < 0.35)
    frame.loc[flip, "label"] = 1 - frame.loc[flip, "label"]  # and the model is now often wrong
    events, labels = rows_to_events(frame, plan_columns(frame), "credit")
    store, alerts = MemoryStateStore(), []
    processor = BatchProcessor(settings, store)
    for k, i in enumerate(range(0, n, 1000)):
        messages = [IncomingMessage("i", 0, k, encode_envelope("credit", events[i:i + 1000], "1"))]
        if i >= delay:  # labels arrive 15000 events late
            messages.append(IncomingMessage("l", 0, k, encode_envelope("credit", labels[i - delay:i - delay + 1000],
                                                                       None, kind="label")))
        out = processor.process(messages)
        assert store.commit(out)
        alerts += out.alerts
    triggers = [a for a in alerts if a["type"] == "retrain"]
    assert [t["evidence"]["rule"] for t in triggers] == ["drift", "performance"]  # the second once, not twice
    opened = {a["id"] for a in alerts if a["type"] == "performance" and a["status"] == "firing"}
    assert {r["id"] for r in triggers[1]["evidence"]["reasons"]} <= opened
    assert triggers[1]["evidence"]["events_seen"] >= 5039 + settings.trigger_cooldown_events
    state = ModelMonitor.from_dict(store.load([("credit", "1")])[("credit", "1")], logic_params(settings).monitor)
    assert state.policy.waiting == [] and RetrainPolicy.from_dict(state.policy.to_dict(), logic_params(settings).monitor.policy).to_dict() \
        == state.policy.to_dict()


def _yes_no(frame):
    for column in ("prediction", "label"):
        frame[column] = np.where(frame[column] == 1, "yes", "no")
    return frame


def test_yes_no_labels_take_yes_as_positive_and_estimate_the_accuracy():
    from stream_processors.profile_registry import profile_from_table
    train = _yes_no(drifting_credit_data(n=20000, shift_at=20000, seed=74))
    frame = _yes_no(drifting_credit_data(n=12000, shift_at=12000, seed=75))
    profile = profile_from_table(train, plan_columns(train), "credit", "1", SETTINGS).to_dict()
    assert profile["performance"]["positive"] == "yes"
    events, _ = rows_to_events(frame, plan_columns(frame), "credit")
    tracker = PerformanceTracker(logic_params(SETTINGS).monitor.performance, profile["performance"])
    assert tracker.calibration.fitted and tracker.positive == "yes"
    assert tracker.on_predictions(events) == []
    realized = np.mean(frame["prediction"] == frame["label"])
    assert abs(tracker.estimated - realized) < 0.05  # it read as certain (about 1.0), an improvement, before
    # without a reference the classes seen name the positive class the same way
    tracker = PerformanceTracker(logic_params(SETTINGS).monitor.performance)
    tracker.on_labels(_joined(frame["prediction"][:300], frame["label"][:300]))
    assert tracker.positive == "yes"
    assert PerformanceTracker.from_dict(tracker.to_dict(), logic_params(SETTINGS).monitor.performance).to_dict() == tracker.to_dict()


def test_labels_of_one_class_fit_no_calibration():
    train = drifting_credit_data(n=20000, shift_at=20000, seed=74)
    train["label"] = "no"
    from stream_processors.profile_registry import profile_from_table
    profile = profile_from_table(train, plan_columns(train), "credit", "1", SETTINGS).to_dict()
    assert "calibration" not in profile["performance"]
