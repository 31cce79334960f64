"""Nearest neighbours by Tanimoto similarity: the chemist's support-only baseline.

A query molecule gets the similarity-weighted share of actives among its ``n_neighbors``
most similar support molecules.  Tanimoto (Jaccard) similarity is the standard measure
between fingerprints: shared bits over bits set in either.  Nothing is meta-trained; the
model is the support set itself.
"""

from __future__ import annotations

import numpy as np

from metamed.learners._params import POSITIVE_INT, SEED, hyperparameter, hyperparameters
from metamed.learners.base import BinaryModel, register
from metamed.learners.baselines import _LocalLearner
from metamed.outcomes import BINARY
from metamed.tasks.task import Task

__all__ = ["TanimotoKNN", "TanimotoKNNModel", "tanimoto"]

#: Weight of a neighbour with similarity 0, so that a query sharing no bit with any
#: support molecule still gets the neighbours' plain mean, not 0 / 0.
_FLOOR = 1e-6


def tanimoto(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every row of ``A`` with every row of ``B``, shape (len(A), len(B)).

    a.b / (|a|^2 + |b|^2 - a.b): on 0/1 fingerprints |a AND b| / |a OR b|, on counts or
    other real features the continuous Tanimoto coefficient.  Two all-zero rows have
    similarity 0.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    dot = A @ B.T
    union = (A * A).sum(axis=1)[:, None] + (B * B).sum(axis=1)[None, :] - dot
    safe = np.where(union > 0, union, 1.0)
    return np.where(union > 0, dot / safe, 0.0)


class TanimotoKNNModel(BinaryModel):
    """The support set and its labels; P(active) from the most similar support molecules."""

    outcome_type = BINARY

    def __init__(self, support_x: np.ndarray, support_y: np.ndarray, n_neighbors: int) -> None:
        self.support_x = support_x
        self.support_y = support_y
        self.n_neighbors = n_neighbors
        self.n_features = int(support_x.shape[1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Similarity-weighted share of actives among the nearest neighbours, shape (n,)."""
        sim = tanimoto(self._inputs(X), self.support_x)
        k = min(int(self.n_neighbors), sim.shape[1])
        # the k most similar support rows of each query (ties: the lower support index)
        nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        weights = np.clip(np.take_along_axis(sim, nearest, axis=1), 0.0, None) + _FLOOR
        labels = np.asarray(self.support_y, dtype=np.float64)[nearest]
        return (weights * labels).sum(axis=1) / weights.sum(axis=1)


@register("local-knn")
@hyperparameters
class TanimotoKNN(_LocalLearner):
    """k nearest neighbours by Tanimoto similarity, on the support set alone (binary).

    Parameters
    ----------
    n_neighbors : int, default 5
        Support molecules that vote (all of them when the support is smaller); each
        votes with its similarity to the query.
    random_state : int, default 0
        Kept for a uniform contract; nothing here is random.
    """

    outcome_types = (BINARY,)

    n_neighbors: int = hyperparameter(default=5, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED)

    def adapt(self, support: Task) -> TanimotoKNNModel:
        """Keep the support set (a copy) as the model."""
        self._check_adapt(support)
        return TanimotoKNNModel(support.X.copy(), support.y.copy(), int(self.n_neighbors))
