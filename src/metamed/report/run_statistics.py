"""The numbers every view of one run shows, computed once for all of them.

A benchmark run writes the same results twice over, as ``summary.md`` and as
``report.html``; both show the bootstrap summary and the verdicts against the best
baseline.  These are the slow part of writing either (thousands of bootstrap resamples
per cell, a Wilcoxon test per comparison), so :class:`RunStatistics` computes each table
the first time a view asks for it and hands the same table to the next view.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.statistics import summarise
from metamed.report.verdicts import judged

__all__ = ["RunStatistics"]


class RunStatistics:
    """Summary and verdict tables of one results table, each computed at most once.

    Parameters
    ----------
    results : DataFrame
        Tidy results (``method, dataset, task, k, draw, metric, value``); not copied, so
        it must not change while this object is in use.
    baselines : sequence of str
        Declared baselines; those without rows are left out of the comparisons.
    methods : sequence of str, optional
        The methods to judge, in this order; default every method present that is not
        a baseline, sorted.  Names without rows are left out.
    n_boot, level, seed
        Bootstrap settings, as in :func:`~metamed.evaluation.statistics.summarise`.

    Attributes
    ----------
    meta : list of str
        The methods judged (see ``methods``).
    base : list of str
        The baselines present, in the declared order (ties between baselines go to the
        first, see :func:`~metamed.evaluation.statistics.best_baseline`).
    """

    def __init__(
        self,
        results: pd.DataFrame,
        baselines: Sequence[str],
        *,
        methods: Sequence[str] | None = None,
        n_boot: int = 2000,
        level: float = 0.95,
        seed: int = 0,
    ) -> None:
        self.results = results
        self.n_boot, self.level, self.seed = n_boot, level, seed
        present = [str(m) for m in pd.unique(results["method"])]
        if methods is None:
            self.meta = sorted(m for m in present if m not in baselines)
        else:
            self.meta = [m for m in methods if m in present]
        self.base = [b for b in baselines if b in present]
        self._verdicts: dict[str, pd.DataFrame] = {}

    @cached_property
    def summary(self) -> pd.DataFrame:
        """:func:`~metamed.evaluation.statistics.summarise` of the results."""
        return summarise(self.results, n_boot=self.n_boot, level=self.level, seed=self.seed)

    def verdicts(self, metric: str) -> pd.DataFrame:
        """Every judged method against the best baseline on ``metric``, with sentences.

        One row per dataset x K x method (:func:`~metamed.report.verdicts.judged`); empty
        when there is no method or no baseline to compare.
        """
        if metric not in self._verdicts:
            if self.meta and self.base:
                table = judged(
                    self.results, self.meta, self.base, metric,
                    n_boot=self.n_boot, level=self.level, seed=self.seed,
                )  # fmt: skip
            else:
                table = pd.DataFrame()
            self._verdicts[metric] = table
        return self._verdicts[metric]

    def reuse(self, given: RunStatistics | None) -> RunStatistics:
        """``given`` if it was computed for the same inputs as this one, else this one.

        Raises
        ------
        MetamedValueError
            When ``given`` holds other results, methods, baselines or bootstrap settings:
            its tables would put another run's numbers in this view.
        """
        if given is None:
            return self
        same = (
            given.results is self.results
            and (given.n_boot, given.level, given.seed) == (self.n_boot, self.level, self.seed)
            and (given.meta, given.base) == (self.meta, self.base)
        )
        if not same:
            raise MetamedValueError(
                "statistics were computed for other results, methods, baselines or bootstrap "
                "settings than this view's; pass the same ones or leave statistics out."
            )
        return given
