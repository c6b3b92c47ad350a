"""The evaluation measures of the paper's tables (METHOD.md, Evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (predicted & truth).sum() / total)


def case_dice(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], case_ids: Sequence[str]) -> dict[str, float]:
    """Dice per case, pooling the pixels of all the case's slices."""
    scores = {}
    for case in dict.fromkeys(case_ids):
        rows = [i for i, c in enumerate(case_ids) if c == case]
        scores[case] = dice(np.concatenate([np.ravel(predicted[i]) for i in rows]), np.concatenate([np.ravel(truth[i]) for i in rows]))
    return scores


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN without both classes."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (positives.size * negatives.size))


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation and count of a list of per-case figures."""
    values = np.asarray(list(values), float)
    if values.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}
