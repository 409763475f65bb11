"""Trials: many branched runs from one snapshot, spread over processes or a Dask cluster,
and the statistics that say whether conditions differ.

- :mod:`.plan` — conditions (``--at``, ``--vary``) × seeds: the trials of a set;
- :mod:`.run` — one trial (restore, changes, run, summarise), a pure function of its inputs;
- :mod:`.pool` — local worker processes or a Dask cluster behind one ``concurrent.futures`` interface;
- :mod:`.stats` — per-condition summaries and comparisons with the baseline (:mod:`scipy.stats`).

Nothing here imports NEST: the workers do, through :mod:`einet.session`.
"""

from __future__ import annotations

from .plan import Condition, Trial, TrialSet, parse_seeds, parse_vary, plan_conditions
from .stats import Comparison, Summary, compare, summarise

__all__ = ["Comparison", "Condition", "Summary", "Trial", "TrialSet", "compare", "parse_seeds", "parse_vary", "plan_conditions", "summarise"]
