"""Label-free performance estimates against realized performance, per window.

    python benchmarks/performance_estimation.py [--windows 200] [--window 5000]

Synthetic binary classifiers whose calibration is known: the true probability
of the positive class is drawn per event (covariate shift moves its
distribution from window to window, so accuracy changes), labels are drawn
from it, and the model reports a score that is either calibrated or
over-confident. The estimate uses plain confidence, or a calibration fitted on
a labelled reference sample (as `driftline profile` does). Prints the mean
absolute error of estimated vs realized accuracy and ROC AUC over windows.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectors.performance import (ScoreCalibration, classification_metrics, expected_accuracy,  # noqa: E402
                                   expected_roc_auc)


def true_probabilities(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    logits = rng.normal(shift, 1.5, n)
    return 1 / (1 + np.exp(-logits))


def reported(p: np.ndarray, kind: str) -> np.ndarray:
    if kind == "calibrated":
        return p
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-1.8 * logit))  # over-confident: pushed towards 0 and 1


def run(kind: str, method: str, windows: int, size: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    calibration = ScoreCalibration()
    if method == "calibrated on reference":
        p_ref = true_probabilities(rng, 20_000, 0.0)
        calibration = ScoreCalibration.fit(reported(p_ref, kind), rng.random(p_ref.size) < p_ref)
    acc_err, auc_err, realized_accs = [], [], []
    for w in range(windows):
        shift = rng.uniform(-1.0, 1.0)  # each window sees another population
        p = true_probabilities(rng, size, shift)
        y = (rng.random(size) < p).astype(int)
        score = reported(p, kind)
        predicted = (score >= 0.5)
        realized = classification_metrics(y.tolist(), predicted.astype(int).tolist(), score.tolist())
        probability = calibration.apply(score)
        acc_err.append(abs(expected_accuracy(probability, predicted) - realized["accuracy"]))
        auc_err.append(abs(expected_roc_auc(probability, score) - realized["roc_auc"]))
        realized_accs.append(realized["accuracy"])
    return float(np.mean(acc_err)), float(np.mean(auc_err)), float(np.std(realized_accs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--window", type=int, default=5000)
    args = parser.parse_args()
    print(f"{args.windows} windows of {args.window} events; accuracy varies between windows (sd shown)")
    print(f"{'scores':<16}{'estimate':<28}{'accuracy MAE':>14}{'ROC AUC MAE':>13}{'sd of accuracy':>16}")
    for kind in ("calibrated", "over-confident"):
        for method in ("plain confidence", "calibrated on reference"):
            acc, auc, spread = run(kind, method, args.windows, args.window, seed=7)
            print(f"{kind:<16}{method:<28}{acc:>14.4f}{auc:>13.4f}{spread:>16.4f}", flush=True)


if __name__ == "__main__":
    main()
