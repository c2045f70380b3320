"""How a chunk is imaged once its imaging copy exists (pure; no CASA).

That is: the grid, the weighting, the major-cycle gain and the expected noise.

The imaging copy (contimg.image.job.imaging_copy) may already fix the grid (its Briggs weights were
made for it) and carry the imaging weights, in which case the imager weights naturally and the
radiometer noise is scaled by what those weights cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from contimg.image.rules import ImagingConfig, expected_image_noise_jy, image_grid

__all__ = ["ImagingPlan", "plan_imaging"]


@dataclass(frozen=True)
class ImagingPlan:
    """What the imager is asked for."""

    cell_arcsec: float
    size_px: int
    weighting: str  # as reported: "natural", "briggs", or "briggs R (imaging weights in the copy)"
    imager_cfg: ImagingConfig  # the config the imager runs with (mgain, niter chosen; weighting as it must weight)
    expected_rms_jy: float  # radiometer noise of the image, for the weights imaged (Jy/beam)


def plan_imaging(prep: dict, info: dict, cfg: ImagingConfig) -> ImagingPlan:
    """The grid, weighting and expected noise for the MS described by ``info``.

    Parameters
    ----------
    prep : dict
        The imaging copy's figures (contimg.image.job.imaging_copy.make_imaging_ms); keys it may
        lack: ``cell_arcsec`` and ``size_px`` (the copy's grid), ``weights_noise_factor`` (set when
        the copy carries Briggs weights), ``effective_uv_cells``.
    info : dict
        contimg.image.job.msread.describe_ms of the MS imaged, with flags: ``max_baseline_m``,
        ``freq_min_hz``, ``freq_max_hz``, ``unflagged_cross_seconds``, ``interval_s``,
        ``channel_width_hz``.
    cfg : ImagingConfig

    Returns
    -------
    ImagingPlan

    Raises
    ------
    ValueError
        If ``info`` holds no unflagged cross-correlation time (nothing to image: the caller says so first).
    """
    if not info["unflagged_cross_seconds"]:
        raise ValueError(
            f"no unflagged cross-correlation data to plan an image for "
            f"(unflagged_cross_seconds {info['unflagged_cross_seconds']!r})"
        )
    if prep.get("cell_arcsec"):  # the grid the copy's imaging weights were made for
        cell, size = prep["cell_arcsec"], prep["size_px"]
    else:
        cell, size = image_grid(info["max_baseline_m"], info["freq_min_hz"], info["freq_max_hz"], cfg)
    weighting, noise_over_natural = cfg.weighting, 1.0
    cells = prep.get("effective_uv_cells")
    imager_cfg = replace(cfg, mgain=cfg.major_cycle_gain(cells), niter=cfg.max_components(cells))
    if prep.get("weights_noise_factor"):  # the copy carries the imaging weights: the imager weights naturally
        noise_over_natural, imager_cfg = prep["weights_noise_factor"], replace(imager_cfg, weighting="natural")
        weighting = f"briggs {cfg.robust:g} (imaging weights in the copy)"
    # in integrations' worth: rows averaged in time count for several
    n_equivalent = info["unflagged_cross_seconds"] / info["interval_s"]
    expected = noise_over_natural * expected_image_noise_jy(n_equivalent, info["channel_width_hz"], info["interval_s"])
    return ImagingPlan(cell, size, weighting, imager_cfg, expected)
