import numpy as np
import orjson
import pytest
from sklearn import metrics as sk

from detectors.performance import (ScoreCalibration, classification_metrics, expected_accuracy, expected_roc_auc,
                                   regression_metrics)


def _data(seed=0, n=5000):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n).round(3)  # rounding makes ties
    labels = (rng.random(n) < scores).astype(int)
    predictions = (scores >= 0.5).astype(int)
    return labels, predictions, scores


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_metrics_match_scikit_learn(seed):
    y, yhat, s = _data(seed)
    m = classification_metrics(y.tolist(), yhat.tolist(), s.tolist())
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, yhat), abs=1e-12)
    assert m["precision"] == pytest.approx(sk.precision_score(y, yhat), abs=1e-12)
    assert m["recall"] == pytest.approx(sk.recall_score(y, yhat), abs=1e-12)
    assert m["f1"] == pytest.approx(sk.f1_score(y, yhat), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert m["log_loss"] == pytest.approx(sk.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15)), rel=1e-9)


def test_string_and_boolean_labels():
    m = classification_metrics(["yes", "no", "yes"], ["yes", "yes", "yes"], positive="yes")
    assert m["accuracy"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert classification_metrics([True, False], [True, True], positive=True)["accuracy"] == 0.5


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    y, p = rng.normal(0, 1, 1000), rng.normal(0.1, 1, 1000)
    m = regression_metrics(y.tolist(), p.tolist())
    assert m["mae"] == pytest.approx(sk.mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, p)))
    assert m["mean_error"] == pytest.approx(np.mean(p - y))


def test_expected_accuracy_and_auc_are_unbiased_for_calibrated_scores():
    rng = np.random.default_rng(4)
    p = rng.beta(2, 2, (400, 2000))
    y = rng.random(p.shape) < p
    realized_acc = np.mean(((p >= 0.5) == y), axis=1)
    estimated_acc = np.array([expected_accuracy(row, row >= 0.5) for row in p])
    assert abs(np.mean(estimated_acc - realized_acc)) < 0.002
    realized_auc = np.array([sk.roc_auc_score(y[i], p[i]) for i in range(50)])
    estimated_auc = np.array([expected_roc_auc(p[i]) for i in range(50)])
    assert abs(np.mean(estimated_auc - realized_auc)) < 0.005


def test_expected_roc_auc_by_brute_force():
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 60).round(1)
    s = p.copy()
    num = den = 0.0
    for i in range(p.size):
        for j in range(p.size):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    assert expected_roc_auc(p) == pytest.approx(num / den, rel=1e-12)


def test_calibration_round_trip_and_fallback():
    y, _, s = _data(6)
    c = ScoreCalibration.fit(s, y)
    restored = ScoreCalibration.from_dict(orjson.loads(orjson.dumps(c.to_dict())))
    assert np.array_equal(restored.apply(s), c.apply(s))
    assert np.array_equal(ScoreCalibration().apply([0.2, 1.5]), [0.2, 1.0])
    with pytest.raises(ValueError):
        ScoreCalibration.fit([0.1] * 10, [1] * 10)


def test_true_one_and_text_one_are_one_class_everywhere():
    from detectors.performance import class_key, same_class

    ones = [True, 1, 1.0, "1", "true", " True ", "1.0"]
    zeros = [False, 0, 0.0, "0", "false", "FALSE"]
    assert {class_key(v) for v in ones} == {"1"} and {class_key(v) for v in zeros} == {"0"}
    assert all(same_class(a, b) for a in ones for b in ones)
    assert not any(same_class(a, b) for a in ones for b in zeros)
    assert same_class("Yes", "yes") and not same_class(2, 2.5) and same_class(2, "2")
    # mixed spellings of one binary problem give scikit-learn's figures on the canonical 0/1 labels
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 400)
    yhat = np.where(rng.random(400) < 0.8, y, 1 - y)
    spell = [[False, True], [0, 1], ["0", "1"], ["false", "true"]]
    labels = [spell[i % 4][v] for i, v in enumerate(y.tolist())]
    predictions = [spell[(i + 1) % 4][v] for i, v in enumerate(yhat.tolist())]
    for positive in (True, 1, "1"):
        m = classification_metrics(labels, predictions, positive=positive)
        assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, yhat), abs=1e-12)
        assert m["f1"] == pytest.approx(sk.f1_score(y, yhat), abs=1e-12)
