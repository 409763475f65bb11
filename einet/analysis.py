"""Analysis of spike trains and weights: digests, rates, PSTHs, histograms. Pure numpy."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

WEIGHT_BIN_COUNT = 60


def spike_digest(senders: np.ndarray, times: np.ndarray, resolution_ms: float | None = None) -> str:
    """SHA-256 of the spike train as the sorted list of (time, sender) pairs.

    Independent of the order NEST reports events in (which varies with threads) and of how a
    run was split into steps, so equal digests mean identical spike trains. With
    ``resolution_ms``, times on that grid are sorted through one integer key (faster than a
    two-key sort, same order); off-grid times fall back to the two-key sort.
    """
    order = _time_sender_order(senders, times, resolution_ms)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(times[order], dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(senders[order], dtype="<i8").tobytes())
    return h.hexdigest()


def _time_sender_order(senders: np.ndarray, times: np.ndarray, resolution_ms: float | None) -> np.ndarray:
    if resolution_ms and len(times) and len(senders) and senders.min() >= 0:
        steps = np.rint(times / resolution_ms)
        span = int(senders.max()) + 1
        if np.abs(times / resolution_ms - steps).max() < 0.25 and steps.max() * span < 2**62:
            return np.argsort(steps.astype(np.int64) * span + senders.astype(np.int64), kind="stable")
    return np.lexsort((senders, times))


def population_rate(n_spikes: int, n_neurons: int, duration_ms: float) -> float:
    """Mean firing rate per neuron in Hz."""
    if n_neurons <= 0 or duration_ms <= 0:
        return 0.0
    return n_spikes / n_neurons / (duration_ms / 1000.0)


def psth(times: np.ndarray, t_start_ms: float, t_stop_ms: float, n_neurons: int, bin_ms: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Population rate (Hz per neuron) in bins; returns (left bin edges, rates)."""
    n_bins = max(1, int(np.ceil((t_stop_ms - t_start_ms) / bin_ms - 1e-9)))
    edges = t_start_ms + bin_ms * np.arange(n_bins + 1)
    counts, _ = np.histogram(times, bins=edges)
    widths = np.diff(np.minimum(edges, t_stop_ms))
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(widths > 0, counts / max(n_neurons, 1) / (widths / 1000.0), 0.0)
    return edges[:-1], rates


def rate_trace(times: np.ndarray, rates: np.ndarray, t_start_ms: float, t_stop_ms: float, bin_ms: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean of sampled rates (rate neurons' ``rate``, all neurons together) in bins, as
    :func:`psth` bins spikes; a bin without samples is 0."""
    n_bins = max(1, int(np.ceil((t_stop_ms - t_start_ms) / bin_ms - 1e-9)))
    edges = t_start_ms + bin_ms * np.arange(n_bins + 1)
    sums, _ = np.histogram(times, bins=edges, weights=rates)
    counts, _ = np.histogram(times, bins=edges)
    return edges[:-1], np.divide(sums, counts, out=np.zeros(n_bins), where=counts > 0)


def weight_bins(samples: Sequence[np.ndarray], n_bins: int = WEIGHT_BIN_COUNT) -> np.ndarray:
    """Bin edges covering every sample (shared, so overlaid histograms compare)."""
    present = [np.asarray(w, dtype=float) for w in samples if len(w)]
    if not present:
        return np.linspace(0.0, 1.0, n_bins + 1)
    lo = min(float(w.min()) for w in present)
    hi = max(float(w.max()) for w in present)
    if hi - lo < 1e-12 * max(1.0, abs(lo)):
        pad = max(abs(lo) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
    return np.linspace(lo, hi, n_bins + 1)


def weight_histogram(weights: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Normalised histogram (density) of weights over ``bins``."""
    counts, _ = np.histogram(weights, bins=bins, density=len(weights) > 0)
    return counts


def identical_to(digests: Sequence[str]) -> list[int | None]:
    """For each run, the index of the first earlier run with the same digest (else None)."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, d in enumerate(digests):
        out.append(first.get(d))
        first.setdefault(d, i)
    return out


def isi_cv(senders: np.ndarray, times: np.ndarray, min_spikes: int = 3) -> float:
    """Mean coefficient of variation of inter-spike intervals over the neurons with at least
    ``min_spikes`` spikes (NaN when none has): ~1 for Poisson-like firing, 0 for a clock."""
    senders = np.asarray(senders)
    if len(senders) < min_spikes:
        return float("nan")
    order = np.lexsort((times, senders))
    s, t = senders[order], np.asarray(times, dtype=float)[order]
    isi = np.diff(t)
    same = s[1:] == s[:-1]
    owner = s[1:][same]
    isi = isi[same]
    if not len(isi):
        return float("nan")
    _, index, counts = np.unique(owner, return_inverse=True, return_counts=True)
    keep = counts >= min_spikes - 1
    if not keep.any():
        return float("nan")
    n = counts.astype(float)
    mean = np.bincount(index, weights=isi) / n
    var = np.bincount(index, weights=isi**2) / n - mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.sqrt(np.maximum(var, 0.0)) / mean
    return float(np.nanmean(cv[keep])) if np.isfinite(cv[keep]).any() else float("nan")


def mean_weight(samples: dict[str, np.ndarray], model: str = "") -> float:
    """Mean of one synapse model's weight sample (``model``, else the first sampled one)."""
    w = samples.get(model) if model else next(iter(samples.values()), None)
    return float(np.mean(w)) if w is not None and len(w) else float("nan")
