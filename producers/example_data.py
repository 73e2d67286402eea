"""An example data set made on the spot: a credit model whose input shifts half way."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["drifting_credit_data"]


def drifting_credit_data(n: int = 20_000, shift_at: int | None = None, shifted_feature: str = "income",
                         shift_sigma: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Loan applications scored by a fixed logistic model.

    Numeric ``age``, ``income``, ``debt_ratio``, ``tenure_years``,
    ``n_accounts``; categorical ``region``; boolean ``homeowner``; about 2%
    of ``debt_ratio`` missing. From row ``shift_at`` (default: half way) the
    mean of ``shifted_feature`` moves by ``shift_sigma`` of its standard
    deviation; nothing else changes. Columns ``prediction``, ``score`` and
    ``label`` come from the model and a noisy ground truth.
    """
    rng = np.random.default_rng(seed)
    shift_at = n // 2 if shift_at is None else shift_at
    data = {
        "age": rng.normal(41.0, 11.0, n),
        "income": rng.normal(52_000.0, 14_000.0, n),
        "debt_ratio": rng.normal(0.35, 0.12, n),
        "tenure_years": rng.normal(6.0, 3.0, n),
        "n_accounts": rng.normal(4.0, 1.5, n),
    }
    sigma = {"age": 11.0, "income": 14_000.0, "debt_ratio": 0.12, "tenure_years": 3.0, "n_accounts": 1.5}
    if shifted_feature not in data:
        raise ValueError(f"shifted_feature must be one of {sorted(data)}")
    data[shifted_feature][shift_at:] += shift_sigma * sigma[shifted_feature]
    data["age"] = np.clip(data["age"], 18.0, 95.0).round(1)
    data["income"] = np.clip(data["income"], 0.0, None).round(2)
    data["tenure_years"] = np.clip(data["tenure_years"], 0.0, None).round(2)
    data["n_accounts"] = np.clip(data["n_accounts"], 0.0, None).round(0)
    data["debt_ratio"] = np.clip(data["debt_ratio"], 0.0, 1.5).round(4)
    data["debt_ratio"][rng.random(n) < 0.02] = np.nan
    region = rng.choice(["north", "south", "east", "west"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    homeowner = rng.random(n) < 0.55
    logit = (-0.03 * (data["age"] - 41) - 0.00004 * (data["income"] - 52_000)
             + 4.0 * (np.nan_to_num(data["debt_ratio"], nan=0.35) - 0.35) - 0.4 * homeowner + 0.2)
    score = 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame({
        "event_id": [f"app-{i:07d}" for i in range(n)],
        **data,
        "region": region,
        "homeowner": homeowner,
        "score": score.round(6),
        "prediction": (score >= 0.5).astype(int),
        "label": (rng.random(n) < score).astype(int),
    })
    return frame


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m producers.example_data",
                                     description="Write the example data set (income shifts half way) to a CSV.")
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    drifting_credit_data(n=args.rows, seed=args.seed).to_csv(args.out, index=False)
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
