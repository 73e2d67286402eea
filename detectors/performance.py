"""Model performance: realized from labels, and estimated from scores while labels are missing."""

from __future__ import annotations

import math

import numpy as np

from detectors.online import StateVersionError

__all__ = ["ScoreCalibration", "class_key", "classification_metrics", "expected_accuracy", "expected_roc_auc",
           "positive_class", "regression_metrics", "same_class"]

_EPS = 1e-15


def class_key(value: object) -> str:
    """The one identity of a class label or prediction, wherever Driftline compares classes.

    ``True``, ``1``, ``1.0``, ``"1"`` and ``"true"`` are one class (``"1"``); ``False``, ``0`` and
    ``"false"`` another (``"0"``). Other numbers compare by value, other text case-insensitively.

    >>> [class_key(v) for v in (True, 1, 1.0, "1", " TRUE ", False, 0, "0.0", 2.5, "Yes")]
    ['1', '1', '1', '1', '1', '0', '0', '0', '2.5', 'yes']
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return _number_key(float(value))
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return "1" if text == "true" else "0"
    try:
        return _number_key(float(text))
    except ValueError:
        return text


def _number_key(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def positive_class(classes) -> str | None:
    """The class a binary classifier's score is the probability of, by ``class_key``: ``"1"`` (``True``,
    ``1``) when it is among ``classes``, else the later of exactly two in sorted order (scikit-learn's
    ``classes_[1]``: ``"yes"`` over ``"no"``); None while that is not known (one class, or more than two).

    >>> [positive_class(c) for c in ([0, 1], [True], ["no", "Yes"], ["no"], ["a", "b", "c"])]
    ['1', '1', 'yes', None, None]
    """
    keys = sorted({class_key(c) for c in classes})
    if "1" in keys:
        return "1"
    return keys[1] if len(keys) == 2 else None


def same_class(prediction: object, label: object) -> bool:
    """Do a prediction and a label name the same class (by ``class_key``)?"""
    return class_key(prediction) == class_key(label)


def _positive_mask(values: list, positive: object) -> np.ndarray:
    wanted = class_key(positive)
    return np.array([class_key(v) == wanted for v in values], dtype=bool)


def classification_metrics(labels: list, predictions: list, scores: list | None = None,
                           positive: object = 1) -> dict[str, float]:
    """Accuracy, and for the ``positive`` class precision, recall and F1; ROC AUC and log loss from
    ``scores`` (the probability of the positive class) where given."""
    y = _positive_mask(labels, positive)
    correct = np.array([same_class(p, t) for p, t in zip(predictions, labels)], dtype=bool)
    yhat = _positive_mask(predictions, positive)
    tp = int(np.sum(y & yhat))
    fp = int(np.sum(~y & yhat))
    fn = int(np.sum(y & ~yhat))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out = {"accuracy": float(correct.mean()) if correct.size else math.nan, "precision": precision,
           "recall": recall, "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        if 0 < y.sum() < y.size:
            out["roc_auc"] = _roc_auc(y, s)
        p = np.clip(s, _EPS, 1 - _EPS)
        out["log_loss"] = float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
    return out


def _roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney: the chance a positive outscores a negative, ties counting half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(labels: list, predictions: list) -> dict[str, float]:
    y = np.asarray(labels, dtype=np.float64)
    err = np.asarray(predictions, dtype=np.float64) - y
    return {"mae": float(np.abs(err).mean()), "rmse": float(math.sqrt(np.mean(err ** 2))),
            "mean_error": float(err.mean())}


def expected_accuracy(probabilities: np.ndarray, predicted_positive: np.ndarray) -> float:
    """Confidence-based estimate: each event is right with probability p if predicted positive, else 1 - p."""
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean(np.where(predicted_positive, p, 1 - p)))


def expected_roc_auc(probabilities: np.ndarray, scores: np.ndarray | None = None) -> float:
    """Expected ROC AUC when event i is positive with probability p_i: the expected count of correctly
    ordered (positive, negative) pairs over the expected count of such pairs (ties count half)."""
    p = np.asarray(probabilities, dtype=np.float64)
    s = p if scores is None else np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    p, s = p[order], s[order]
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    group_neg = np.add.reduceat(1 - p, first)
    tie_neg = np.repeat(group_neg, counts) - (1 - p)  # other negatives with the same score
    start_neg = np.repeat(np.cumsum(np.r_[0, group_neg[:-1]]), counts)  # negatives at lower scores
    correct = np.sum(p * (start_neg + 0.5 * tie_neg))
    pairs = p.sum() * (1 - p).sum() - np.sum(p * (1 - p))
    return float(correct / pairs) if pairs > 0 else math.nan


class ScoreCalibration:
    """Histogram-binning calibration of a binary classifier's scores, fitted on labelled reference data.

    Scores are cut at their reference quantiles into ``bins`` bins; a bin's calibrated probability is
    the share of positives in it (with one pseudo-observation at the bin's mean score). Without a fit,
    scores are taken as they are (plain confidence).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true_p = rng.uniform(0, 1, 50_000)
    >>> labels = rng.random(50_000) < true_p
    >>> overconfident = np.clip(0.5 + 1.5 * (true_p - 0.5), 0, 1)
    >>> calibration = ScoreCalibration.fit(overconfident, labels)
    >>> round(float(np.mean(np.abs(calibration.apply(overconfident) - true_p))), 2)
    0.03
    """

    def __init__(self, edges: list[float] | None = None, rates: list[float] | None = None) -> None:
        self.edges = list(edges or [])
        self.rates = list(rates or [])

    @property
    def fitted(self) -> bool:
        return bool(self.rates)

    @classmethod
    def fit(cls, scores, labels, bins: int = 20) -> ScoreCalibration:
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if s.size < bins * 10:
            raise ValueError(f"calibration needs at least {bins * 10} labelled scores, got {s.size}")
        edges = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
        idx = np.searchsorted(edges, s, side="right")
        n = np.bincount(idx, minlength=edges.size + 1)
        positives = np.bincount(idx, weights=y, minlength=edges.size + 1)
        mean_score = np.bincount(idx, weights=s, minlength=edges.size + 1) / np.maximum(n, 1)
        rates = (positives + mean_score) / (n + 1)
        return cls(edges.tolist(), rates.tolist())

    def apply(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if not self.fitted:
            return np.clip(s, 0.0, 1.0)
        return np.asarray(self.rates)[np.searchsorted(np.asarray(self.edges), s, side="right")]

    def to_dict(self) -> dict:
        return {"format": "driftline.score_calibration/1", "edges": self.edges, "rates": self.rates}

    @classmethod
    def from_dict(cls, state: dict) -> ScoreCalibration:
        if state.get("format") != "driftline.score_calibration/1":
            raise StateVersionError(f"unknown calibration format {state.get('format')!r}")
        return cls(state["edges"], state["rates"])
