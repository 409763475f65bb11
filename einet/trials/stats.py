"""Per-condition summaries and comparisons with the baseline, by :mod:`scipy.stats`.

Each figure of a condition (a population's rate, say) is one number per trial, the trials
differing only in their random stream. Its summary is the mean, the standard deviation and the
95 % confidence interval of the mean (Student's t). A condition is compared with the baseline
by Welch's t-test: the difference of the means with its 95 % interval, and the verdict
"differs" when that interval excludes zero (p < 0.05).

Why Welch's test and not a bootstrap: sets are small (ten seeds is a typical experiment) and a
percentile bootstrap's interval is too narrow at such sizes; each figure is an average over
many neurons, so across seeds it is close to normal; and a change of condition often changes
the spread too (a stronger drive makes the rate vary more), which Welch's test allows and
Student's pooled test does not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
DIFFERS = "differs"
NO_DIFFERENCE = "no difference detected"
TOO_FEW = "too few trials"


@dataclass(frozen=True)
class Summary:
    """One figure over a condition's trials (NaN where it cannot be had)."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: _json(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Comparison:
    """A condition's figure against the baseline's: the difference of the means (condition
    minus baseline), its 95 % interval, Welch's p-value and the verdict."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str

    def to_dict(self) -> dict[str, float | str | None]:
        return {k: _json(v) if not isinstance(v, str) else v for k, v in self.__dict__.items()}


def _json(value: float | int) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sample standard deviation and the 95 % confidence interval of the mean of the
    finite ``values`` (fewer than two: no sd or interval; all equal: the interval is the value)."""
    from scipy import stats

    x = _finite(values)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(np.mean(x))
    if len(x) < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    sd = float(np.std(x, ddof=1))
    if sd == 0.0:  # scipy divides by the standard error: the mean is known exactly here
        return Summary(len(x), mean, 0.0, mean, mean)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
    return Summary(len(x), mean, sd, float(ci.low), float(ci.high))


def compare(condition: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """Welch's t-test of ``condition`` against ``baseline`` (their finite values): the
    difference of the means, its 95 % interval and the verdict. Each needs two values or more;
    when neither varies, the difference is exact and any difference at all "differs"."""
    from scipy import stats

    a, b = _finite(condition), _finite(baseline)
    if len(a) < 2 or len(b) < 2:
        return Comparison(math.nan, math.nan, math.nan, math.nan, TOO_FEW)
    diff = float(np.mean(a) - np.mean(b))
    if np.ptp(a) == 0.0 and np.ptp(b) == 0.0:  # no spread: no test, the values say it
        return Comparison(diff, diff, diff, 0.0 if diff else 1.0, DIFFERS if diff else NO_DIFFERENCE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one constant group: scipy warns, the test stands
        result = stats.ttest_ind(a, b, equal_var=False)
        ci = result.confidence_interval(CONFIDENCE)
    p = float(result.pvalue)
    return Comparison(diff, float(ci.low), float(ci.high), p, DIFFERS if p < 1 - CONFIDENCE else NO_DIFFERENCE)
