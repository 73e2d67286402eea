"""Labels joined late and out of order; realized performance, alerts and retrain triggers."""

import numpy as np
import pytest
from sklearn import metrics as sk

from producers.events import encode_envelope
from producers.example_data import drifting_credit_data
from producers.replay import plan_columns, rows_to_events
from stream_processors.batch import logic_params
from detectors.model.monitor import ModelMonitor
from stream_processors.batch import BatchProcessor, IncomingMessage
from stream_processors.config import Settings
from stream_processors.state import MemoryStateStore

SETTINGS = Settings(performance_window=500)


class Feed:
    """Messages on an inference and a label topic, processed one batch at a time."""

    def __init__(self, settings=SETTINGS):
        self.store = MemoryStateStore()
        self.processor = BatchProcessor(settings, self.store)
        self.offsets = {"inference": 0, "labels": 0}
        self.alerts = []
        self.settings = settings

    def send(self, topic, model, events, kind, version="1"):
        value = encode_envelope(model, events, version if kind == "inference" else None, kind=kind)
        message = IncomingMessage(topic, 0, self.offsets[topic], value)
        self.offsets[topic] += 1
        return message

    def process(self, messages):
        outcome = self.processor.process(messages)
        assert self.store.commit(outcome)
        self.alerts += outcome.alerts
        return outcome

    def state(self, model="credit", version="1"):
        return ModelMonitor.from_dict(self.store.load([(model, version)])[(model, version)], logic_params(self.settings).monitor)


def _events(n=6000, seed=0, **kw):
    frame = drifting_credit_data(n=n, seed=seed, **kw)
    return rows_to_events(frame, plan_columns(frame), "credit")


def test_labels_before_and_after_their_predictions_all_join():
    events, labels = _events(3000)
    rng = np.random.default_rng(1)
    early = set(rng.choice(3000, 1000, replace=False).tolist())  # these labels come first
    feed = Feed()
    first = [label for i, label in enumerate(labels) if i in early]
    later = [label for i, label in enumerate(labels) if i not in early]
    rng.shuffle(later)
    feed.process([feed.send("labels", "credit", first[i:i + 250], "label") for i in range(0, len(first), 250)])
    assert feed.store.pending_labels("credit") == 1000
    feed.process([feed.send("inference", "credit", events[i:i + 500], "inference") for i in range(0, 3000, 500)])
    assert feed.store.pending_labels("credit") == 0
    feed.process([feed.send("labels", "credit", later[i:i + 250], "label") for i in range(0, len(later), 250)])
    counts = feed.store.label_counts()
    assert counts["credit:joined"] == 3000 and counts.get("credit:unmatched", 0) == 0

    # realized metrics equal scikit-learn's over the same windows (in join order)
    by_id = {e["event_id"]: e for e in events}
    # join order: the early labels as their predictions came (in event order), then the later ones as sent
    joined_ids = [labels[i]["event_id"] for i in sorted(early)] + [label["event_id"] for label in later]
    windows = [joined_ids[i:i + 500] for i in range(0, 3000, 500)]
    history = feed.state().performance.history
    assert len(history) == 6
    label_of = {label["event_id"]: label["label"] for label in labels}
    for window, m in zip(windows[-len(history):], history):
        y = [label_of[i] for i in window]
        yhat = [by_id[i]["prediction"] for i in window]
        score = [by_id[i]["score"] for i in window]
        assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, yhat), abs=1e-12)
        assert m["f1"] == pytest.approx(sk.f1_score(y, yhat), abs=1e-12)
        assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)


def test_labels_that_never_match_are_counted_after_their_wait():
    settings = Settings(performance_window=500, label_wait_s=0.0)
    feed = Feed(settings)
    feed.process([feed.send("labels", "credit", [{"event_id": "ghost-1", "label": 1, "timestamp": 1.0}], "label")])
    feed.process([feed.send("labels", "credit", [{"event_id": "ghost-2", "label": 0, "timestamp": 1.0}], "label")])
    counts = feed.store.label_counts()
    assert counts["credit:unmatched"] >= 1 and counts["credit:pending"] + counts["credit:unmatched"] == 2


def test_redelivered_labels_are_not_joined_twice():
    events, labels = _events(2000)
    feed = Feed()
    inference = [feed.send("inference", "credit", events[i:i + 500], "inference") for i in range(0, 2000, 500)]
    label_msgs = [feed.send("labels", "credit", labels[i:i + 500], "label") for i in range(0, 2000, 500)]
    feed.process(inference + label_msgs[:2])
    feed.process(inference + label_msgs)  # at-least-once: everything again, and the rest
    assert feed.store.label_counts()["credit:joined"] == 2000
    assert len(feed.state().performance.history) == 4


def _flip(labels, start, share, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    for i, label in enumerate(labels):
        if i >= start and rng.random() < share:
            label = {**label, "label": 1 - label["label"]}
        out.append(label)
    return out


def test_a_performance_drop_gives_a_performance_alert_and_one_retrain_trigger():
    events, labels = _events(12000, seed=5)
    labels = _flip(labels, 6000, 0.35)  # the world changed: a third of the answers are now wrong
    feed = Feed()
    for i in range(0, 12000, 500):
        feed.process([feed.send("inference", "credit", events[i:i + 500], "inference"),
                      feed.send("labels", "credit", labels[i:i + 500], "label")])
    performance = [a for a in feed.alerts if a["type"] == "performance"]
    triggers = [a for a in feed.alerts if a["type"] == "retrain"]
    assert performance and {a["detector"] for a in performance} >= {"realized_accuracy"}
    assert len(triggers) == 1
    trigger = triggers[0]
    assert trigger["evidence"]["rule"] == "performance"
    assert {r["id"] for r in trigger["evidence"]["reasons"]} <= {a["id"] for a in performance}
    assert int(trigger["evidence"]["last_event_id"].split("-")[1]) >= 6000
    assert all(int(a["evidence"]["last_event_id"].split("-")[1]) >= 6000 for a in performance)


def test_a_harmless_shift_drifts_but_does_not_hurt():
    # tenure_years is not used by the model: its shift is drift, not a performance problem
    events, labels = _events(12000, seed=6, shift_at=6000, shifted_feature="tenure_years")
    feed = Feed()
    for i in range(0, 12000, 500):
        feed.process([feed.send("inference", "credit", events[i:i + 500], "inference"),
                      feed.send("labels", "credit", labels[i:i + 500], "label")])
    assert {a["feature"] for a in feed.alerts if a["type"] == "drift"} == {"tenure_years"}
    assert not [a for a in feed.alerts if a["type"] in ("performance", "retrain")]


def test_a_new_version_starts_fresh_and_the_old_one_is_kept():
    events, labels = _events(2000)
    feed = Feed()
    feed.process([feed.send("inference", "credit", events[:1000], "inference", version="1")])
    feed.process([feed.send("inference", "credit", events[1000:], "inference", version="2"),
                  feed.send("labels", "credit", labels, "label")])
    old, new = feed.state(version="1"), feed.state(version="2")
    assert (old.events, new.events) == (1000, 1000)
    assert new.numeric["income"].count == 1000 and not new.monitors["income"].monitoring  # its own baseline
    # each label went to the version that made its prediction
    assert len(old.performance.history) == 2 and len(new.performance.history) == 2


def test_a_label_past_its_wait_whose_prediction_arrives_now_joins_once():
    settings = Settings(performance_window=500, label_wait_s=0.0)  # every waiting label is already due
    feed = Feed(settings)
    events, labels = _events(10)
    ghost = {"event_id": "never-predicted", "label": 1, "timestamp": 1.0}  # keeps the sweep running
    feed.process([feed.send("labels", "credit", labels[:3] + [ghost], "label")])
    feed.process([feed.send("inference", "credit", events, "inference")])
    counts = feed.store.label_counts()
    assert counts["credit:joined"] == 3
    assert counts["credit:unmatched"] == 1 and counts["credit:pending"] == 0
