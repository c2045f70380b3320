"""Variability statistics of daily light curves and the candidate rules, with their false-positive rates.

Per source, over the days given (all of them, or a sliding window):

- ``V = s / I``: the standard deviation of the fluxes over their mean (modulation index);
- ``eta``: the reduced chi^2 of a constant (the weighted mean), ``sum (S - S_w)^2 / err^2 / (n - 1)``;
- for every pair of epochs (Mooley et al. 2016, ApJ 818, 105): ``Vs = (S1 - S2) / sqrt(err1^2 + err2^2)`` and
  ``m = 2 (S1 - S2) / (S1 + S2)``; the largest ``|Vs|`` and ``|m|`` are reported;
- ``dip_sigma``: an extreme-scattering-event-shaped dip found by a matched box filter over days: for each
  start day and each width of 1 .. :data:`MAX_DIP_DAYS` days, the weighted mean inside the box against the
  median outside it (robust to a flare elsewhere; at least 3 days and as many as inside); the best
  significance ``(base - inside) / error``.

Errors used are the measured ones with a fractional floor (:data:`ERROR_FLOOR_FRACTION`) added in quadrature.

Rules (a source is a candidate when any fires; every rule that fired is recorded):

- ``eta``: chi^2 of a constant with false-alarm probability below :data:`ETA_FALSE_ALARM` (the threshold on
  ``eta`` follows from the chi^2 distribution with n - 1 degrees of freedom);
- ``Vs_m``: one pair of epochs with ``|Vs| >= VS_THRESHOLD`` and ``|m| >= M_THRESHOLD`` (Mooley et al.'s 4.3
  and 0.26);
- ``dip``: ``dip_sigma >= DIP_SIGMA_THRESHOLD`` and a fractional depth of at least :data:`DIP_MIN_DEPTH`.

:func:`false_positive_rates` measures what these rules flag among constant sources with realistic errors (pure
numpy Monte Carlo); the figures behind the constants are in the comments and ``tests/test_variability.py``.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import chi2

__all__ = [
    "ERROR_FLOOR_FRACTION",
    "ETA_FALSE_ALARM",
    "VS_THRESHOLD",
    "M_THRESHOLD",
    "MAX_DIP_DAYS",
    "DIP_SIGMA_THRESHOLD",
    "DIP_MIN_DEPTH",
    "MIN_EPOCHS",
    "SourceVariability",
    "statistics",
    "source_variability",
    "eta_threshold",
    "false_positive_rates",
]

# Per-epoch fractional error added in quadrature to the thermal one: what the flux-scale normalisation and
# deconvolution leave on bright sources. An assumption (1 %) until measured on DSA-110 data; the Monte Carlo
# injects exactly this scatter, so the rates below hold when it is right.
ERROR_FLOOR_FRACTION = 0.01
ETA_FALSE_ALARM = 1e-3  # chi^2 tail probability: 1 constant source in 1000 flagged if errors were exact
# Mooley et al. 2016: |Vs| >= 4.3 (two-sided Gaussian tail 1.7e-5 per pair) with |m| >= 0.26 (a 30 % change)
VS_THRESHOLD = 4.3
M_THRESHOLD = 0.26
MAX_DIP_DAYS = 5  # ESEs last days to weeks; wider boxes need the sliding window to be longer than 2 x this
# The best of ~n x MAX_DIP_DAYS boxes of a constant source (look-elsewhere), measured with the Monte Carlo of
# false_positive_rates (2e4 sources, S/N 10-300, 10 % error on the errors, 1 % floor): dip_sigma's 99.9th
# percentile is 3.9 over 7 days and 4.4 over 30; with the depth cut the rule's rate at 4.5 is 1e-4 (7 days)
# and 1.5e-4 (30 days), at 4.0 2e-4 and 2e-3
DIP_SIGMA_THRESHOLD = 4.5
DIP_MIN_DEPTH = 0.1  # ESEs dip by tens of per cent; a 5-sigma 2 % dip of a bright source is not one
MIN_BASELINE_EPOCHS = 3  # a dip's baseline is the median of at least this many days outside it
MIN_EPOCHS = 3  # fewer days: no statistics (a pair and a baseline are needed)


@dataclass(frozen=True)
class SourceVariability:
    """A source's statistics over a set of days and the rules that fired (empty: not a candidate)."""

    source_id: str
    n_epochs: int
    mean_flux_jy: float
    V: float
    eta: float
    max_abs_Vs: float
    max_abs_m: float
    dip_sigma: float
    dip_depth: float  # 1 - inside / baseline of the best dip
    dip_start: str  # first day of the best dip ('' when none)
    dip_days: int
    rule: str  # '+'-joined rules that fired, '' when none

    @property
    def variable(self) -> bool:
        """True when any rule fired."""
        return bool(self.rule)

    def as_dict(self) -> dict:
        """The fields (and ``variable``) as a dict."""
        return {**asdict(self), "variable": self.variable}


def eta_threshold(n_epochs: int, false_alarm: float = ETA_FALSE_ALARM) -> float:
    """The ``eta`` a constant source exceeds with probability ``false_alarm`` (chi^2, n - 1 dof)."""
    dof = n_epochs - 1
    return float(chi2.isf(false_alarm, dof) / dof)


def statistics(day_index: np.ndarray, flux: np.ndarray, err: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics of many light curves at once.

    Parameters
    ----------
    day_index : numpy.ndarray
        (n_days,) integer day numbers (e.g. MJD) of the columns, increasing.
    flux, err : numpy.ndarray
        (n_sources, n_days) fluxes and their errors (Jy); NaN where a source has no point that day.
        The error floor is added here.

    Returns
    -------
    dict of numpy.ndarray
        Per source: ``n_epochs``, ``mean_flux_jy``, ``V``, ``eta``, ``max_abs_Vs``, ``max_abs_m``,
        ``max_pair_vs_m`` (the largest ``min(|Vs| / VS_THRESHOLD, |m| / M_THRESHOLD)`` over pairs: >= 1 when
        one pair passes both), ``dip_sigma``, ``dip_depth``, ``dip_start`` (index of the first day, -1 when
        none), ``dip_days``. NaN where fewer than :data:`MIN_EPOCHS` points.
    """
    day_index = np.asarray(day_index)
    s = np.atleast_2d(np.asarray(flux, dtype=float))
    e = np.atleast_2d(np.asarray(err, dtype=float))
    have = np.isfinite(s) & np.isfinite(e) & (e > 0)
    s = np.where(have, s, np.nan)
    e = np.where(have, np.sqrt(e**2 + (ERROR_FLOOR_FRACTION * s) ** 2), np.nan)
    n = have.sum(axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (a source with no points) give NaN
        mean = np.nanmean(s, axis=1)
        std = np.nanstd(s, axis=1, ddof=1)
        w = np.where(have, 1.0 / e**2, 0.0)
        wmean = np.nansum(w * np.nan_to_num(s), axis=1) / w.sum(axis=1)
        eta = np.nansum(w * (np.nan_to_num(s) - wmean[:, None]) ** 2, axis=1) / (n - 1)
        max_vs = np.zeros(len(s))
        max_m = np.zeros(len(s))
        pair_score = np.zeros(len(s))
        for i, j in itertools.combinations(range(s.shape[1]), 2):
            ok = have[:, i] & have[:, j]
            vs = np.abs(s[:, i] - s[:, j]) / np.sqrt(e[:, i] ** 2 + e[:, j] ** 2)
            m = np.abs(2 * (s[:, i] - s[:, j]) / (s[:, i] + s[:, j]))
            max_vs = np.where(ok, np.fmax(max_vs, vs), max_vs)
            max_m = np.where(ok, np.fmax(max_m, m), max_m)
            pair_score = np.where(ok, np.fmax(pair_score, np.fmin(vs / VS_THRESHOLD, m / M_THRESHOLD)), pair_score)
        dip = _best_dip(day_index, s, e, have)
    few = n < MIN_EPOCHS
    out = {
        "n_epochs": n,
        "mean_flux_jy": mean,
        "V": std / mean,
        "eta": eta,
        "max_abs_Vs": max_vs,
        "max_abs_m": max_m,
        "max_pair_vs_m": pair_score,
        **dip,
    }
    for k, v in out.items():
        if k not in ("n_epochs", "dip_start", "dip_days"):
            out[k] = np.where(few, np.nan, v)
    return out


def _best_dip(day_index, s, e, have) -> dict[str, np.ndarray]:
    n_src, n_days = s.shape
    best = np.full(n_src, -np.inf)
    depth = np.full(n_src, np.nan)
    start = np.full(n_src, -1)
    width = np.zeros(n_src, dtype=int)
    w = np.where(have, 1.0 / e**2, 0.0)
    sz = np.nan_to_num(s)
    for k in range(n_days):
        for days in range(1, MAX_DIP_DAYS + 1):
            inside = (day_index >= day_index[k]) & (day_index < day_index[k] + days)
            if days > 1 and not np.any(day_index[inside] == day_index[k] + days - 1):
                continue  # the box ends on a day with no data: the same set as a narrower box
            win = w[:, inside].sum(axis=1)
            n_out = have[:, ~inside].sum(axis=1)
            n_in = have[:, inside].sum(axis=1)
            # a dip departs from a baseline: most points, and at least 3 (a median of 2 is their mean)
            ok = (n_in > 0) & (n_out >= MIN_BASELINE_EPOCHS) & (n_out >= n_in)
            mu_in = (w[:, inside] * sz[:, inside]).sum(axis=1) / np.where(win > 0, win, 1)
            base = np.nanmedian(np.where(have[:, ~inside], s[:, ~inside], np.nan), axis=1)
            # the median's variance: pi/2 that of the weighted mean of the outside points
            var_out = (np.pi / 2) / np.where(n_out > 0, w[:, ~inside].sum(axis=1), np.inf)
            z = (base - mu_in) / np.sqrt(1.0 / np.where(win > 0, win, np.inf) + var_out)
            z = np.where(ok, z, -np.inf)
            better = z > best
            best = np.where(better, z, best)
            depth = np.where(better, 1.0 - mu_in / base, depth)
            start = np.where(better, k, start)
            width = np.where(better, days, width)
    best = np.where(np.isfinite(best), best, np.nan)
    return {"dip_sigma": best, "dip_depth": depth, "dip_start": start, "dip_days": width}


def rules_fired(st: dict[str, np.ndarray]) -> list[str]:
    """The '+'-joined rules that fire for each source of :func:`statistics` ('' when none)."""
    n = st["n_epochs"]
    out = []
    for k in range(len(n)):
        fired = []
        if n[k] >= MIN_EPOCHS:
            if st["eta"][k] > eta_threshold(int(n[k])):
                fired.append("eta")
            if st["max_pair_vs_m"][k] >= 1.0:
                fired.append("Vs_m")
            if st["dip_sigma"][k] >= DIP_SIGMA_THRESHOLD and st["dip_depth"][k] >= DIP_MIN_DEPTH:
                fired.append("dip")
        out.append("+".join(fired))
    return out


def source_variability(source_ids, dates, flux, err) -> list[SourceVariability]:
    """Statistics and rules per source from (n_sources, n_days) arrays over the days ``dates`` (YYYY-MM-DD).

    Raises
    ------
    ValueError
        If the shapes do not match the ids and dates, or the dates are not increasing days.
    """
    from datetime import date as _date

    dates = list(dates)
    flux, err = np.atleast_2d(flux), np.atleast_2d(err)
    if flux.shape != (len(source_ids), len(dates)) or err.shape != flux.shape:
        raise ValueError(
            f"flux {flux.shape} and err {err.shape} must be (sources, days) = ({len(source_ids)}, {len(dates)})"
        )
    day_index = np.array([_date.fromisoformat(d).toordinal() for d in dates])
    if np.any(np.diff(day_index) <= 0):
        raise ValueError("dates must be distinct days in increasing order")
    st = statistics(day_index, flux, err)
    rules = rules_fired(st)
    return [
        SourceVariability(
            str(sid),
            int(st["n_epochs"][k]),
            float(st["mean_flux_jy"][k]),
            float(st["V"][k]),
            float(st["eta"][k]),
            float(st["max_abs_Vs"][k]),
            float(st["max_abs_m"][k]),
            float(st["dip_sigma"][k]),
            float(st["dip_depth"][k]),
            dates[st["dip_start"][k]] if st["dip_start"][k] >= 0 else "",
            int(st["dip_days"][k]),
            rules[k],
        )
        for k, sid in enumerate(source_ids)
    ]


def false_positive_rates(
    n_sources: int,
    n_days: int,
    *,
    seed: int = 0,
    snr_range: tuple[float, float] = (10.0, 300.0),
    error_floor: float = ERROR_FLOOR_FRACTION,
    error_of_error: float = 0.1,
) -> dict[str, float]:
    """Fraction of constant sources that each rule (and any rule) flags: a pure numpy Monte Carlo.

    Each source has flux 1 and a thermal S/N drawn log-uniformly in ``snr_range``; each day adds Gaussian
    thermal noise and a Gaussian flux-scale residual of ``error_floor``; the quoted error is the thermal one
    misestimated by a factor ``1 + error_of_error x N(0, 1)`` (the background rms map's own scatter).

    Returns
    -------
    dict of float
        ``eta``, ``Vs_m``, ``dip`` and ``any``: flagged fractions.
    """
    rng = np.random.default_rng(seed)
    snr = np.exp(rng.uniform(*np.log(snr_range), size=(n_sources, 1)))
    sigma = 1.0 / snr
    flux = 1.0 + sigma * rng.normal(size=(n_sources, n_days)) + error_floor * rng.normal(size=(n_sources, n_days))
    err = sigma * np.abs(1.0 + error_of_error * rng.normal(size=(n_sources, n_days)))
    rules = rules_fired(statistics(np.arange(n_days), flux, err))
    rates = {r: float(np.mean([r in x.split("+") for x in rules])) for r in ("eta", "Vs_m", "dip")}
    rates["any"] = float(np.mean([bool(x) for x in rules]))
    return rates
