"""The evaluation measures of the paper's tables (docs/method.md, Evaluation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["auroc", "case_dice", "dice", "summary"]


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (predicted & truth).sum() / total)


def case_dice(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], case_ids: Sequence[str]
) -> dict[str, float]:
    """Dice per case, pooling the pixels of all the case's slices."""
    scores = {}
    for case in dict.fromkeys(case_ids):
        rows = [i for i, c in enumerate(case_ids) if c == case]
        scores[case] = dice(
            np.concatenate([np.ravel(predicted[i]) for i in rows]), np.concatenate([np.ravel(truth[i]) for i in rows])
        )
    return scores


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U on ranks, ties count half); NaN without both classes."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError("scores and labels need the same length")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based mean rank of each distinct score
    ranks = average_rank[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def summary(values: Iterable[float]) -> dict[str, float]:
    """Mean, standard deviation and count of per-case figures."""
    figures = np.asarray(list(values), float)
    if figures.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(figures.mean()), "std": float(figures.std()), "n": int(figures.size)}
