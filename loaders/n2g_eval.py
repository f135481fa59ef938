"""Scoring of Neuron2Graph models, as in the N2G papers (arXiv 2304.12918, 2305.19911).

A token *fires* when its normalised activation (activation / the neuron's max) is >= 0.5.
Precision, recall and F1 are computed separately for firing and non-firing tokens over a
neuron's held-out examples. The token-lookup baseline of the preprint predicts each token
from the largest normalised activation that token had anywhere in the training examples.

    >>> s = classification_scores([1.0, 0.0, 0.9, 0.1], [0.8, 0.7, 0.0, 0.0])
    >>> s["firing"]["precision"], s["firing"]["recall"]
    (0.5, 0.5)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

FIRE_THRESHOLD = 0.5


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    # Like the papers' stats: predicting nothing as firing counts as perfect precision
    # (arXiv 2305.19911 stats.py "precision case"); recall is undefined without positives.
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else None
    if recall is None:
        f1 = None
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "count": tp + fn}


def classification_scores(true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray,
                          threshold: float = FIRE_THRESHOLD) -> dict[str, dict[str, float | None]]:
    """P/R/F1 for firing (>= threshold) and non-firing tokens, from normalised activations."""
    t = np.asarray(true, dtype=float) >= threshold
    p = np.asarray(pred, dtype=float) >= threshold
    return {
        "firing": _prf(int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())),
        "non_firing": _prf(int((~t & ~p).sum()), int((t & ~p).sum()), int((~t & p).sum())),
    }


class TokenLookup:
    """The preprint's token-lookup baseline: a token's prediction is the largest normalised
    activation it had in the training examples (0 for unseen tokens).

        >>> b = TokenLookup.fit([([5, 6], [0.2, 1.0])])
        >>> b.predict([6, 5, 7]).tolist()
        [1.0, 0.2, 0.0]
    """

    def __init__(self, table: dict[int, float]) -> None:
        self.table = table

    @classmethod
    def fit(cls, examples: Iterable[tuple[Sequence[int], Sequence[float]]]) -> "TokenLookup":
        table: dict[int, float] = {}
        for tokens, acts in examples:
            for tok, a in zip(tokens, acts):
                a = float(a)
                if a > table.get(int(tok), float("-inf")):
                    table[int(tok)] = a
        return cls(table)

    def predict(self, tokens: Sequence[int]) -> np.ndarray:
        return np.array([max(self.table.get(int(t), 0.0), 0.0) for t in tokens], dtype=float)


def flat_scores(scores: dict[str, dict[str, float | None]], prefix: str) -> dict[str, float | int | None]:
    """{'firing': {...}, 'non_firing': {...}} -> {'<prefix>firing_precision': ..., ...}."""
    out: dict[str, float | int | None] = {}
    for cls_name, d in scores.items():
        for metric, v in d.items():
            out[f"{prefix}{cls_name}_{metric}"] = v
    return out
