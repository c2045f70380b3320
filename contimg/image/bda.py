"""Baseline-dependent averaging in time of calibrated rows (pure numpy; no CASA).

A baseline's (u, v) turns at a rate proportional to its length, so a source off the phase centre
smears in time at a rate proportional to it too: a short baseline can average many integrations
for the loss the longest one has in one. The imaging copy averages each baseline over the run of
integrations ``contimg.imaging.baseline_time_bins`` allows; the imager then grids fewer rows for
the same sky. Weights add (natural and Briggs weighting see the same uv-cell sums), so the noise
and the synthesized beam stay as they were.

Visibilities and weights are (row, chan, pol), as the table stores them; row columns are laid out as
``getcol`` returns them (..., row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

__all__ = ["baseline_runs", "TimeAveraging", "plan_time_averaging"]

# Row columns that are means (times, uvw) or sums (durations) over a group; the others (antennas,
# ids) are the same for every row of a group and are taken from its first row.
MEAN_COLUMNS = ("TIME", "TIME_CENTROID", "UVW")
SUM_COLUMNS = ("INTERVAL", "EXPOSURE")
# Rows differing in any of these never share a group.
KEY_COLUMNS = ("DATA_DESC_ID", "FIELD_ID", "SCAN_NUMBER", "ARRAY_ID", "ANTENNA1", "ANTENNA2")


def baseline_runs(rows: dict) -> tuple[np.ndarray, np.ndarray]:
    """(order, run_starts): the rows ordered by baseline then time, and where each run starts.

    ``order`` is the row order that puts each baseline's integrations together in time;
    ``run_starts`` the positions in that order where a run of consecutive integrations starts (a
    new baseline, window, field or scan, or a gap of more than half an integration).
    """
    time = np.asarray(rows["TIME"], float)
    keys = [np.asarray(rows[c]) for c in KEY_COLUMNS if c in rows]
    order = np.lexsort([time] + keys[::-1])
    n = order.size
    if n == 0:
        return order, np.zeros(0, int)
    new = np.zeros(n, bool)
    new[0] = True
    for k in keys:
        ks = k[order]
        new[1:] |= ks[1:] != ks[:-1]
    ts = time[order]
    interval = np.asarray(rows["INTERVAL"], float)[order]
    new[1:] |= np.diff(ts) > 0.75 * (interval[1:] + interval[:-1])  # a missing integration
    return order, np.flatnonzero(new)


@dataclass(frozen=True)
class TimeAveraging:
    """Which rows average into which, built by ``plan_time_averaging`` from the row columns alone.

    One plan thus serves every window whose rows line up with the ones it was made from (the
    averaging workers apply it to their window's data; the copy's row columns get it once).
    """

    order: np.ndarray  # rows sorted by baseline, then time
    group_starts: np.ndarray  # positions in ``order`` where a group starts
    summing: sparse.csr_matrix  # (groups x rows): 1 where a row belongs to a group
    by_time: np.ndarray  # the groups' output order: by time, then baseline
    figures: dict  # rows_in, rows_out, max_bin

    def rows(self, rows: dict) -> dict:
        """The averaged row columns: means (times, uvw), sums (durations) or the group's first value."""
        count = np.diff(np.r_[self.group_starts, self.order.size])
        out = {}
        for col, value in rows.items():
            v = np.asarray(value)[..., self.order]
            if col in MEAN_COLUMNS:
                out[col] = np.add.reduceat(v.astype(float), self.group_starts, axis=-1) / count
            elif col in SUM_COLUMNS:
                out[col] = np.add.reduceat(v.astype(float), self.group_starts, axis=-1)
            else:
                out[col] = v[..., self.group_starts]
        return {c: v[..., self.by_time] for c, v in out.items()}

    def average(self, data: np.ndarray, wsum: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(data, weights, flags) of the groups.

        ``data`` (row, chan, pol) are averaged as weighted means with weights ``wsum`` (0 = flagged);
        the groups' weights add.
        """
        n = self.order.size
        # one sparse (groups x rows) product: np.add.reduceat over the row axis walks the inner axes
        # group by group (1.2 s for a full-size chunk; this takes 0.05 s)
        w_all = (self.summing @ wsum.reshape(n, -1)).reshape((-1,) + wsum.shape[1:])
        acc = (self.summing @ (data * wsum).reshape(n, -1)).reshape((-1,) + data.shape[1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(w_all > 0, acc / w_all, 0).astype(data.dtype)
        avg, w_all = avg[self.by_time], w_all[self.by_time].astype(wsum.dtype)
        return avg, w_all, w_all <= 0


def plan_time_averaging(rows: dict, freq_max_hz: float, radius_rad: float, max_loss: float) -> TimeAveraging:
    """Each baseline's runs of integrations cut into groups of the length ``baseline_time_bins`` allows.

    The length is the one allowed at ``radius_rad``; the last group of a run may be shorter. Groups are
    consecutive integrations of one baseline; they come out sorted by time, then baseline.
    """
    from contimg.core.constants import C_M_S
    from contimg.image.rules import baseline_time_bins  # here: workers unpickle plans, and need no astropy

    order, starts = baseline_runs(rows)
    n_in = order.size
    if n_in == 0:
        return TimeAveraging(
            order,
            order,
            sparse.csr_matrix((0, 0), dtype=np.float32),
            order,
            {"rows_in": 0, "rows_out": 0, "max_bin": 1},
        )
    run_of_row = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n_in]))
    time = np.asarray(rows["TIME"], float)[order]
    uvw = np.asarray(rows["UVW"], float)[:, order]
    # each run's fastest uv and w motion between neighbouring integrations (m/s), at the top frequency
    dt = np.diff(time)
    same_run = run_of_row[1:] == run_of_row[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        uv_rate = np.where(same_run, np.hypot(*np.diff(uvw[:2], axis=1)) / dt, 0.0)
        w_rate = np.where(same_run, np.abs(np.diff(uvw[2])) / dt, 0.0)
    run_uv = np.maximum.reduceat(np.r_[uv_rate, 0.0], starts)
    run_w = np.maximum.reduceat(np.r_[w_rate, 0.0], starts)
    integration = float(np.median(np.asarray(rows["INTERVAL"], float)))
    run_len = np.diff(np.r_[starts, n_in])
    to_wl = freq_max_hz / C_M_S
    bins = (
        baseline_time_bins(run_uv * to_wl, run_w * to_wl, integration, int(run_len.max()), radius_rad, max_loss)
        if max_loss > 0
        else np.ones(starts.size, int)
    )
    position = np.arange(n_in) - starts[run_of_row]
    group_starts = np.flatnonzero(position % bins[run_of_row] == 0)
    count = np.diff(np.r_[group_starts, n_in])
    group = np.repeat(np.arange(group_starts.size), count)
    summing = sparse.csr_matrix((np.ones(n_in, np.float32), (group, order)), shape=(group_starts.size, n_in))
    first = order[group_starts]
    mean_time = np.add.reduceat(time, group_starts) / count
    by_time = np.lexsort((np.asarray(rows["ANTENNA2"])[first], np.asarray(rows["ANTENNA1"])[first], mean_time))
    return TimeAveraging(
        order,
        group_starts,
        summing,
        by_time,
        {"rows_in": int(n_in), "rows_out": int(group_starts.size), "max_bin": int(bins.max())},
    )
