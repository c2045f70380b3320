"""PNG thumbnails of images and mosaics: RA/Dec axes, asinh stretch, colour bar, beam, sources (matplotlib, Agg).

What an astronomer expects of a quick look: sky coordinates on the axes (astropy WCSAxes), a stretch
that shows the noise and the bright sources together (asinh from -3 to +STRETCH_MAX_RMS sigma, or to
the peak when fainter), a colour bar in mJy/beam, the restoring beam drawn to scale in the lower-left
corner, and the detected sources circled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_png", "STRETCH_MIN_RMS", "STRETCH_MAX_RMS", "ASINH_A"]

STRETCH_MIN_RMS = -3.0  # the colour scale starts 3 sigma below zero: the noise shows as texture
STRETCH_MAX_RMS = 100.0  # and ends at 100 sigma (or the peak when lower): brighter sources saturate
# asinh's linear-to-log turnover as a fraction of the range: ~0.03 puts 3 sigma of noise in the linear
# part and compresses the bright sources (Lupton et al. 2004)
ASINH_A = 0.03


def write_png(
    image: np.ndarray,
    path: Path,
    *,
    title: str = "",
    rms: float | None = None,
    max_px: int = 1024,
    wcs=None,
    beam: tuple[float, float, float] | None = None,
    sources: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write a thumbnail of a 2-d image (Jy/beam).

    Parameters
    ----------
    image : ndarray
        The plane, (y, x) as FITS stores it.
    path : Path
        The PNG written.
    title : str
        Shown above the image (the window and rms, say).
    rms : float, optional
        The noise (Jy/beam) that sets the stretch; default: the plane's standard deviation.
    max_px : int
        The plane is decimated to at most this many pixels a side.
    wcs : astropy.wcs.WCS, optional
        The plane's celestial WCS: RA/Dec axes, sources placed by position. None: pixel axes.
    beam : (bmaj_deg, bmin_deg, bpa_deg), optional
        The restoring beam, drawn in the lower-left corner (needs ``wcs``); zeros draw nothing.
    sources : (ra_deg, dec_deg) arrays, optional
        Detections, marked with open circles (needs ``wcs``).

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``image`` is not 2-d.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize
    from astropy.wcs.utils import proj_plane_pixel_scales
    from matplotlib.patches import Ellipse

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"a thumbnail is of a 2-d plane, got shape {image.shape}")
    step = max(1, int(np.ceil(max(image.shape) / max_px)))
    img = image[::step, ::step] * 1e3  # mJy/beam
    finite = img[np.isfinite(img)]
    if rms is None or not np.isfinite(rms) or rms <= 0:
        rms = float(np.std(finite)) / 1e3 if finite.size else 1e-3
    rms_mjy = rms * 1e3
    peak = float(np.max(finite)) if finite.size else rms_mjy
    vmin = STRETCH_MIN_RMS * rms_mjy
    vmax = max(min(peak, STRETCH_MAX_RMS * rms_mjy), 5.0 * rms_mjy)
    norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=ASINH_A))
    small_wcs = wcs[::step, ::step] if wcs is not None else None

    fig = plt.figure(figsize=(7, 6.2), dpi=100)
    ax = fig.add_subplot(projection=small_wcs) if small_wcs is not None else fig.add_subplot()
    shown = ax.imshow(img, origin="lower", cmap="gray_r", norm=norm, interpolation="nearest")
    # a bar as tall as the image: a wide mosaic strip would otherwise get one twice its height
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, shrink=min(1.0, img.shape[0] / img.shape[1]))
    bar.set_label("mJy/beam")
    ax.set_title(title, fontsize=9)
    if small_wcs is None:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    else:
        ax.coords[0].set_axislabel("RA (ICRS)")
        ax.coords[1].set_axislabel("Dec (ICRS)")
        ax.coords[0].set_major_formatter("hh:mm")
        ax.coords[1].set_major_formatter("dd:mm")
        ax.coords.grid(color="0.6", alpha=0.4, linestyle=":")
        if sources is not None and len(sources[0]):
            ax.scatter(
                np.asarray(sources[0]),
                np.asarray(sources[1]),
                transform=ax.get_transform("icrs"),
                s=80,
                facecolors="none",
                edgecolors="tab:red",
                linewidths=0.8,
            )
        if beam is not None and beam[0] > 0 and beam[1] > 0:
            bmaj_deg, bmin_deg, bpa_deg = beam
            cell_deg = float(np.mean(np.abs(proj_plane_pixel_scales(small_wcs))))  # deg per (decimated) pixel
            h_px, w_px = bmaj_deg / cell_deg, bmin_deg / cell_deg
            ny, nx = img.shape
            margin = max(h_px, w_px) / 2 + 0.02 * nx
            # FITS x grows westwards and y northwards: a position angle east of north turns the
            # major axis from +y towards -x, counter-clockwise on the plot
            ax.add_patch(
                Ellipse(
                    (margin, margin),
                    width=w_px,
                    height=h_px,
                    angle=bpa_deg,
                    facecolor="tab:blue",
                    edgecolor="none",
                )
            )
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(path)
