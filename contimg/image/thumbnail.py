"""PNG thumbnails of images (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_png"]


def write_png(image: np.ndarray, path: Path, *, title: str = "", rms: float | None = None, max_px: int = 1024) -> Path:
    """A grey-scale thumbnail stretched from -3 to +20 rms (so noise and sources both show)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(1, int(np.ceil(max(image.shape) / max_px)))
    img = image[::step, ::step]
    if rms is None or not np.isfinite(rms) or rms <= 0:
        finite = img[np.isfinite(img)]
        rms = float(np.std(finite)) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.imshow(img, origin="lower", cmap="gray_r", vmin=-3 * rms, vmax=20 * rms, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return Path(path)
