"""Events the benchmarks send: car-loan-like models and wider synthetic ones, as Kafka messages.

A loan event has 7 features (6 numeric, 1 categorical), a prediction and a score, the shape of the loan
applications of ``make demo``. A model drifting from event ``drift_at`` on has every numeric feature moved by
one standard deviation and a new mix of home ownership, so its inputs, score and prediction all change.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from producers.events import encode_envelope, encode_event  # noqa: E402

LOAN_NUMERIC = ("income", "loan_amount", "age", "credit_score", "debt_to_income", "employment_years")
LOAN_MEAN = np.array([52_000.0, 18_000.0, 41.0, 680.0, 0.32, 7.0])
LOAN_SD = np.array([15_000.0, 6_000.0, 11.0, 55.0, 0.09, 4.0])
HOME = np.array(["rent", "own", "mortgage"], dtype=object)
HOME_BEFORE, HOME_AFTER = [0.45, 0.2, 0.35], [0.25, 0.2, 0.55]
_WEIGHTS = np.array([-0.6, 0.5, -0.1, -0.8, 0.7, -0.2])

__all__ = ["envelopes", "loan_columns", "loan_events", "loan_features", "loan_rows", "single_messages",
           "wide_events"]


def loan_columns(n: int, rng: np.random.Generator, drift_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(numeric values [n, 6], home ownership [n]) of ``n`` applications; from ``drift_at`` on, shifted."""
    z = rng.normal(0.0, 1.0, (n, len(LOAN_NUMERIC)))
    home = rng.choice(HOME, size=n, p=HOME_BEFORE)
    if drift_at is not None and drift_at < n:
        z[drift_at:] += 1.0
        home[drift_at:] = rng.choice(HOME, size=n - drift_at, p=HOME_AFTER)
    return z, home


def loan_rows(n: int, rng: np.random.Generator, drift_at: int | None = None) -> tuple[list, list, list]:
    """(numeric values, home ownership, score) of ``n`` applications, as lists of plain Python values."""
    z, home = loan_columns(n, rng, drift_at)
    values = (LOAN_MEAN + z * LOAN_SD).round(4).tolist()
    scores = (1.0 / (1.0 + np.exp(-(z @ _WEIGHTS)))).round(5).tolist()
    return values, home.tolist(), scores


def loan_features(values: list[float], home: str) -> dict:
    features = dict(zip(LOAN_NUMERIC, values))
    features["home_ownership"] = home
    return features


def loan_events(model: str, n: int, rng: np.random.Generator, drift_at: int | None = None) -> list[dict]:
    """``n`` events of one loan model, ids ``{model}-{i}``, with the timestamp of now."""
    values, home, scores = loan_rows(n, rng, drift_at)
    now = time.time()
    return [{"event_id": f"{model}-{i}", "timestamp": now, "features": loan_features(values[i], home[i]),
             "prediction": int(scores[i] > 0.5), "score": scores[i]} for i in range(n)]


def wide_events(model: str, n: int, n_features: int, rng: np.random.Generator) -> list[dict]:
    """``n`` events of a model with ``n_features`` features, one in five categorical."""
    n_cat = n_features // 5
    n_num = n_features - n_cat
    values = rng.normal(50.0, 10.0, (n, n_num)).round(4).tolist()
    cats = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), size=(n, n_cat)).tolist()
    names = [f"x{j}" for j in range(n_num)] + [f"c{j}" for j in range(n_cat)]
    now = time.time()
    return [{"event_id": f"{model}-{i}", "timestamp": now, "features": dict(zip(names, values[i] + cats[i])),
             "prediction": i % 2, "score": 0.5} for i in range(n)]


def envelopes(events_by_model: dict[str, list[dict]], size: int) -> list[tuple[bytes, bytes]]:
    """(key, value) batch envelopes of ``size`` events, the models taking turns as concurrent servers would."""
    return _taking_turns([[(m.encode(), encode_envelope(m, ev[i:i + size], "1")) for i in range(0, len(ev), size)]
                          for m, ev in events_by_model.items()])


def single_messages(events_by_model: dict[str, list[dict]]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages of one event each, the models taking turns."""
    return _taking_turns([[(m.encode(), encode_event({"model": m, "model_version": "1", **e})) for e in ev]
                          for m, ev in events_by_model.items()])


def _taking_turns(per_model: list[list[tuple[bytes, bytes]]]) -> list[tuple[bytes, bytes]]:
    rounds = max(len(v) for v in per_model)
    return [msgs[r] for r in range(rounds) for msgs in per_model if r < len(msgs)]
