"""PNG of light curves (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from datetime import date as _date
from pathlib import Path

from contimg.photometry.daily import DailyPoint

__all__ = ["MAX_PANELS", "plot_light_curves"]

MAX_PANELS = 12  # more candidates than this in one night: the first ones plotted, the rest listed elsewhere


def plot_light_curves(points: list[DailyPoint], labels: dict[str, str], path, *, title: str = "") -> Path:
    """One panel per source of ``labels`` ({source_id: legend text, e.g. the rule}).

    Each panel: the normalised daily flux with its error against the day, the source's mean dashed.

    Raises
    ------
    ValueError
        If ``labels`` is empty.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not labels:
        raise ValueError("no light curves to plot")
    ids = list(labels)[:MAX_PANELS]
    ncol = min(3, len(ids))
    nrow = -(-len(ids) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, sid in zip(axes.flat, ids, strict=False):
        pts = sorted((p for p in points if p.source_id == sid), key=lambda p: p.date)
        day0 = _date.fromisoformat(pts[0].date).toordinal() if pts else 0
        t = [_date.fromisoformat(p.date).toordinal() - day0 for p in pts]
        s = np.array([p.flux_norm_jy for p in pts]) * 1e3
        e = np.array([p.err_norm_jy for p in pts]) * 1e3
        ax.errorbar(t, s, yerr=e, fmt="o", ms=3, capsize=2)
        if len(s):
            ax.axhline(np.mean(s), ls="--", lw=0.8, color="grey")
        ax.set_title(f"{sid}: {labels[sid]}", fontsize=8)
        ax.set_xlabel(f"days since {pts[0].date if pts else ''}", fontsize=7)
        ax.set_ylabel("flux (mJy)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ids) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
