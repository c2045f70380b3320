"""Quick-image settings and the rules that derive cell, size and noise from the data (pure).

All settings live in :class:`ImagingConfig` with documented defaults; ``from_json``/``from_mapping`` let
the asset or the CLI override any of them. Every field is checked (type, range, allowed strings) when a
config is made, and an unknown key is refused: a typo never images with the defaults.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from contimg.core.beam import C_M_S, fwhm_rad
from contimg.core.config import SettingsError
from contimg.core.instrument import SEFD_JY

__all__ = [
    "ImagingConfig",
    "SHALLOW_IMAGING",
    "cell_arcsec",
    "image_size_px",
    "image_grid",
    "image_half_side_deg",
    "expected_image_noise_jy",
    "smearing_loss",
    "channel_bin",
    "time_merge_loss",
    "time_smearing_loss",
    "baseline_time_bins",
]


@dataclass(frozen=True)
class ImagingConfig:
    """How to image a chunk: imager, weighting, grid, cleaning depth and threads.

    Every field is checked on construction (see the comments on the fields for their meaning);
    :meth:`from_mapping` applies overrides to the defaults.

    Raises
    ------
    SettingsError
        If a field has a value that is not allowed, or ``min_size_px`` exceeds ``max_size_px``.
    """

    # "wsclean" (fast default, ~8-18x faster than tclean on a full chunk) or "tclean" (CASA reference).
    imager: str = "wsclean"
    weighting: str = "briggs"  # "briggs" or "natural"
    robust: float = 0.0
    pixels_per_beam: float = 4.0  # cell = resolution / this: samples the beam's minor axis with >= 3 pixels
    # ... but with at least dense_min_antennas antennas with data, resolution / dense_pixels_per_beam (0 = always
    # pixels_per_beam). The full array's restoring beam (the PSF's main lobe, restoring_beam) is ~34" x 15" with
    # Briggs 0: 2.5 per resolution element puts 2.4 pixels across its minor axis, and the grid's uv extent,
    # 1 / (2 cells), still reaches 1.25x the longest baseline. Issue #22, the full-size realistic sky, one image job
    # each, the same chunk and catalogue (docs/benchmarks.md): WSClean 15 s against 19-20 s (deconvolution 3.4 s
    # against 6.8 s; its gridding barely shrinks, its w-planes set by the field), image 19-20 s against 24-25 s,
    # the same rms / twin (1.07), isolated sources good (99.6 %), median flux ratio (0.978 against 0.980), no
    # island above 5 sigma against one of 5.2, science QA green (completeness 0.99, reliability 0.99, flux ratio
    # 0.984, once PyBDSF's contour flag was turned off: contimg.image.sources). 2.25 (7.05" cells) left 5 islands
    # up to 6.0 sigma. The nightly mosaic's bilinear regridding lowered a point source's fitted peak by 4.7 % on
    # average here against 3.3 % at 3, so it now regrids the image by cubic spline (contimg.mosaic.build: ~0.1 % at
    # both). Sparser arrays fitted a
    # narrower minor axis with WSClean's own beam (8.5" at 24 and 32 antennas): there 3 lost flux
    # (tests/test_image_subtract_job.py: a third of the sources off by > 10 %) and completeness
    # (tests/test_science_qa_image.py 0.94), hence the threshold between 32 and 96. The main lobe's minor axis is
    # wider (12.9" at 32 antennas), so 3 may hold on sparser arrays too: not measured again.
    dense_pixels_per_beam: float = 2.5
    dense_min_antennas: int = 64
    field_fwhm: float = 1.3  # image side = this x primary-beam FWHM at the lowest frequency
    max_size_px: int = 4096
    min_size_px: int = 256
    # A safety net, not the depth: the thresholds (threshold_sigma, auto_mask_sigma) stop the clean. Issue
    # #22: at 1000 components the target field kept ~1,000 sidelobe islands of one 2 Jy source.
    niter: int = 100_000
    # clean down to this many times the noise: the radiometer's expected for the data (the floor) and,
    # for WSClean, the residual's own (-auto-threshold), whichever is larger
    threshold_sigma: float = 3.0
    # WSClean major-cycle gain; 0 = chosen by the data (major_cycle_gain). Each major cycle costs a
    # degrid + grid of the chunk, and mgain sets how many it takes (a source of peak S needs about
    # log(S / threshold) / log(1 / (1 - mgain))). A deep minor loop is safe only when the PSF's
    # sidelobes are low, i.e. the uv plane is well filled. Measured with Briggs 0: a full-size chunk
    # (8e4 effective uv cells) reached the same rms, peaks and fluxes (within 0.5 %) in two major
    # cycles at 0.98 where 0.9 took three (target field) or four (8.8 Jy calibrator) and 0.96 three
    # (calibrator). Sparse chunks need 0.9: 24 antennas (3e3 cells) gave 1.4x the rms at 0.98 and
    # 3.6x the islands at 0.964; 16 antennas (1.8e3 cells) 1.8x the rms at 0.953 and 2x at 0.96.
    # The naturally weighted PSF of a sparse snapshot has a broad plateau: there 0.9 diverged
    # (rms 3400x) and 0.8 stopped at 1.5-1.8x the radiometer, while 0.7 reached it.
    mgain: float = 0.0
    # Briggs: mgain 0.98 and a clean as deep as the thresholds allow (niter) from this many effective uv
    # cells; below (a sparse uv plane), mgain 0.9 and at most sparse_niter components. Where a bright
    # source's sidelobes set the dirty image's rms (about S / sqrt(cells)), the first minor loop's stop,
    # 2 % of S, must stay above the -auto-threshold of 3 x that rms, or the clean ends after one cycle
    # (it did on the 24-antenna chunk): (3 / 0.02)^2 = 2.25e4 cells at least. And a deep masked clean
    # diverged on the demo's 24-antenna chunks after the 8.8 Jy calibrator's transit (2.3e4 cells):
    # rms 17x the radiometer at 0.98 five minutes after it, 53x at 0.9 and 6000x at 0.8 ten minutes
    # after. The calibrator drifts through the primary beam during a chunk (from 0.95 to 0.64 of its
    # flux in the first, 0.64 to 0.27 in the second): a time-variable part no constant component
    # models (its dirty image alone: rms 3.6 and 2.9 mJy/beam, 3x and 2.4x the radiometer). Its
    # sidelobes look like sources, and a sparse snapshot leaves the clean room to build large positive
    # and negative components the few uv samples barely see. Capped at sparse_niter they held (docs/
    # benchmarks.md); the 32-antenna realistic-sky chunk (4.8e4 cells, no Jy source in the main lobe)
    # held with the deep clean at 0.98 and 0.9, hence the threshold between the two.
    deep_clean_min_uv_cells: float = 3.5e4
    sparse_niter: int = 2000
    # WSClean major cycles at most (its own default). Each costs a degrid + grid of the chunk; capping
    # them at 3 or 6 left the sidelobes of a 2 Jy source in the residual (rms 8x / 1.4x the radiometer).
    nmiter: int = 20
    # Seconds WSClean may take before it is stopped and the copy imaged again with the quick look
    # (SHALLOW_IMAGING), said in the report's warnings; 0 = no limit (tclean, run in the job's process, has none).
    # A full-size chunk's deep clean takes ~20 s; one that chased a 2 Jy source's sidelobes took ~12 min, and the
    # stream must keep up with 5-minute chunks.
    clean_budget_s: float = 240.0
    # WSClean's w-gridder accuracy (ducc's epsilon; WSClean's default 1e-4). At 1e-3 a full-size chunk's
    # gridding and prediction took ~16 % less CPU, the image differed from the 1e-4 one by 0.6 % of its
    # noise (rms; the largest pixel, beside the 8.8 Jy calibrator: 1.1 mJy, 1.3e-4 of its peak) and every
    # flux agreed within 0.1 %; 1e-2 put 2 mJy (6 sigma) errors beside a 1.9 Jy source.
    wgridder_accuracy: float = 1e-3
    # WSClean -auto-mask: below this many sigma, clean only where brighter emission was already found
    # (0 = off). Issue #22: with it, a deep clean to the noise (3 sigma) stays on real emission.
    auto_mask_sigma: float = 5.0
    # On a sparse array (fewer than dense_min_antennas antennas with data), where the reference catalogue has a
    # source (apparent flux >= 2 sigma of the radiometer), the masked clean goes down to this many sigma instead
    # of auto_mask_sigma (contimg.image.known_sources; 0 = off; nothing without a catalogue). The 32-antenna
    # test chunk of the counts sky: islands of 5-6.6 sigma at no source 40 -> 3, image +7 s. The full array
    # had none without it and 2 of 5.2 sigma with it, for +5 s (docs/benchmarks.md).
    known_source_sigma: float = 3.0
    # WSClean: output channels cleaned jointly (-channels-out N -join-channels), their spectra fitted by a
    # polynomial of spectral_terms terms (-fit-spectral-pol); 1 = one multi-frequency plane, whose clean
    # components carry no spectral index. A 1.31-1.50 GHz band leaves a source of index -0.75 sidelobes
    # of ~+-5 % of its peak that a single-term clean cannot remove (issue #22); two channels with linear
    # spectra modelled the realistic sky as well as four at 40 % of the time.
    channels_out: int = 2
    spectral_terms: int = 2
    # Channels averaged (after calibration) into the imaging copy: 0 = the largest bin whose bandwidth
    # smearing loses at most max_smearing_loss of a point source's peak at the primary beam's
    # half-power radius (6 channels for DSA-110 at full resolution, 5 % at the image edge); 1 = none.
    chan_average: int = 0
    max_smearing_loss: float = 0.03
    # Subbands carry their own time stamps (seconds apart), so each is a spectral window of its own;
    # WSClean grids every spectral window in a pass of its own (16 FFT sets per inversion). The imaging
    # copy puts them in one window on the subbands' mean uvw when that costs a source at the primary
    # beam's half-power radius at most this fraction of its peak (time_merge_loss): 2.7x faster imaging.
    max_merge_loss: float = 0.03
    # Integrations averaged per baseline (after calibration) into the imaging copy: each baseline gets
    # the longest run of integrations whose time smearing loses at most this fraction of a point
    # source's peak at the primary beam's half-power radius (baseline_time_bins). Short baselines turn
    # slowly in the uv plane, so a full-size chunk keeps ~40 % of its visibilities and WSClean grids
    # ~2.5x fewer. 0 = no averaging in time.
    max_time_smearing_loss: float = 0.03
    # Briggs weights computed on the imaging copy (contimg.image.weighting; both imagers then weight it naturally)
    # rather than by the imager: WSClean and tclean weight alike, and time averaging leaves the beam alone.
    briggs_in_copy: bool = True
    pb_limit: float = 0.1  # primary-beam-corrected pixels below this beam response are blanked
    pb_time_samples: int = 12  # samples of the drift averaged for the chunk's effective beam
    # WSClean starts from a PSF and dirty image gridded by ducc0 (contimg.image.gridding: the same w-gridder,
    # 1.7x faster than the copy inside Debian's WSClean 3.1) when the imaging copy was made; False:
    # WSClean grids them itself.
    initial_images_by_ducc0: bool = True
    # ... from this many effective uv cells (a full-size chunk has 8e4; the natural weights' are not
    # counted: 0 = always). WSClean grids its later residual images at the Nyquist size and resamples
    # them (its small inversion); the PSF handed to it is exact. The two differ by ~1e-4 of the peak in
    # a full-size chunk's field but by up to 6e-3 near a sparse field's edge, where the minor loop then
    # subtracts sidelobes its residual does not have: an 8-antenna chunk (450 cells) came out at 3.1x the
    # radiometer's rms, 1.9x with WSClean's own images.
    initial_images_min_uv_cells: float = 2.25e4
    threads: int = 2
    # The restoring beam: "main_lobe", the ellipse through the half-power contour of the PSF the imaging copy's
    # weights make (contimg.image.psf_width; given to the imager), or "fit", the imager's own fit of its PSF.
    # Issue #22: WSClean's fit of the 32-antenna realistic-sky chunk's PSF followed its near sidelobes (55.9" x
    # 8.9" at PA 101, 2.2 pixels across; the PSF's main lobe is 28.2" x 12.9" at PA 72): a Gaussian of that
    # beam fits the PSF with amplitude 0.77, and the restored sources came out low (median flux ratio 0.944,
    # 86 % of isolated sources within 10 %); with the main lobe's beam 0.993 and 100 %, same rms. Full size (96
    # antennas, one WSClean run each on the same copy): 56.6" x 14.9" fitted against 33.7" x 15.1", 97.1 % -> 99.3 %
    # good, median 0.967 -> 0.981, same rms and WSClean CPU; the search costs 0.7-1.5 CPU s in the copy there.
    restoring_beam: str = "main_lobe"
    # With a reference catalogue: subtract its sources beyond the image's edge (to the first sidelobe), seen
    # through the primary beam, from the calibrated visibilities before imaging (contimg.image.subtract):
    # clean cannot model a source outside the image, whose sidelobes then stay as artefacts (issue #22).
    subtract_outside: bool = True
    # ... and of every catalogue source inside the field, the part of its apparent flux that the drift through the
    # beam changes within the chunk and the beam's frequency dependence changes within an output channel,
    # S(f) A(t, f) - <S A>_(t, channel), which clean's one component per output channel cannot fit: a sparse chunk
    # after the calibrator's transit held 2.5-2.9x the radiometer's rms whatever clean did, and at full size the
    # within-channel spectra of 0.1-0.2 Jy sources beyond half power left 4 islands of 5-7 sigma
    # (docs/benchmarks.md)
    subtract_drift: bool = True

    def grid_pixels_per_beam(self, n_antennas: int) -> float:
        """Pixels per resolution element for a chunk with ``n_antennas`` antennas with data.

        dense_pixels_per_beam from dense_min_antennas antennas (when set), else pixels_per_beam.
        """
        if self.dense_pixels_per_beam > 0 and n_antennas >= self.dense_min_antennas:
            return self.dense_pixels_per_beam
        return self.pixels_per_beam

    def known_source_depth(self, n_antennas: int) -> float:
        """The masked clean's depth (sigma) at the catalogue's sources for a chunk with ``n_antennas`` antennas.

        known_source_sigma below dense_min_antennas antennas with data with auto-masking on, else 0 (not used).
        """
        if self.auto_mask_sigma > 0 and n_antennas < self.dense_min_antennas:
            return self.known_source_sigma
        return 0.0

    def major_cycle_gain(self, effective_uv_cells: float | None = None) -> float:
        """The major-cycle gain: mgain if set, else chosen by the data.

        By the data: 0.7 naturally weighted; with Briggs weights 0.98 when the copy's
        ``effective_uv_cells`` (contimg.weighting.briggs_weighting; the PSF's rms is 1 / sqrt of it)
        reach deep_clean_min_uv_cells, else (or unknown: the imager weights) 0.9.
        """
        if self.mgain > 0:
            return self.mgain
        if self.weighting != "briggs":
            return 0.7
        return 0.98 if self._well_filled(effective_uv_cells) else 0.9

    def max_components(self, effective_uv_cells: float | None = None) -> int:
        """The clean's component limit: niter, or at most sparse_niter below deep_clean_min_uv_cells.

        A sparse uv plane (or an unknown one: the imager weights) leaves a deep clean room to diverge
        on what it cannot model (see deep_clean_min_uv_cells).
        """
        return self.niter if self._well_filled(effective_uv_cells) else min(self.niter, self.sparse_niter)

    def _well_filled(self, effective_uv_cells: float | None) -> bool:
        return (effective_uv_cells or 0) >= self.deep_clean_min_uv_cells

    def __post_init__(self):
        """Check every field; raise SettingsError naming every field not allowed (or min_size_px above max_size_px)."""
        problems = [p for name, value in asdict(self).items() if (p := _field_problem(name, value))]
        if not problems and self.min_size_px > self.max_size_px:
            problem = f"min_size_px={self.min_size_px} is above max_size_px={self.max_size_px} (set both)"
            problems.append(("min_size_px", problem))
        if not problems and self.channels_out > 1 and self.spectral_terms > self.channels_out:
            problem = (
                f"spectral_terms={self.spectral_terms} is above channels_out={self.channels_out} "
                "(a polynomial needs at least as many channels as terms)"
            )
            problems.append(("spectral_terms", problem))
        if not problems and 0 < self.auto_mask_sigma < self.known_source_sigma:
            problem = (
                f"known_source_sigma={self.known_source_sigma} is above auto_mask_sigma={self.auto_mask_sigma} "
                "(it lowers the mask's depth where the catalogue has a source)"
            )
            problems.append(("known_source_sigma", problem))
        if problems:
            raise SettingsError(
                "ImagingConfig",
                {p[0]: getattr(self, p[0]) for p in problems},
                ALLOWED_IMAGING,
                "; ".join(p[1] for p in problems),
            )

    def to_json(self) -> str:
        """The configuration as a JSON object of its fields."""
        return json.dumps(asdict(self))

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None) -> ImagingConfig:
        """The defaults with ``overrides`` (field name -> value) applied, every field checked.

        Raises
        ------
        SettingsError
            If a key is not a field, or a value has the wrong type or is out of range. Every problem
            is named in the one message (the key, the value received and what is allowed).
        """
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        problems = [_unknown_key(k, known) for k in overrides if k not in known]
        problems += [p[1] for k, v in overrides.items() if k in known and (p := _field_problem(k, v))]
        if problems:
            raise SettingsError("ImagingConfig", overrides, ALLOWED_IMAGING, "; ".join(problems))
        try:
            return replace(cls(), **overrides)
        except SettingsError as err:  # the fields together (min_size_px <= max_size_px, spectral_terms)
            raise SettingsError("ImagingConfig", overrides, ALLOWED_IMAGING, err.problem) from None

    @classmethod
    def from_json(cls, text: str | None) -> ImagingConfig:
        """:meth:`from_mapping` of a JSON object; None or empty text gives the defaults.

        Raises
        ------
        SettingsError
            If ``text`` is not a JSON object, or as :meth:`from_mapping`.
        """
        if text is None or not text.strip():
            return cls()
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as err:
            raise SettingsError(
                "ImagingConfig", text, ALLOWED_IMAGING, f"not JSON ({err.msg} at character {err.pos})"
            ) from None
        if not isinstance(overrides, dict):
            raise SettingsError(
                "ImagingConfig", text, ALLOWED_IMAGING, f"a JSON {type(overrides).__name__}, not an object"
            )
        return cls.from_mapping(overrides)


# The defaults before issue #22 (one plane, no mask, 1000 components): a quick look at a third of the
# image CPU at full size, for fields with a few sources; the benchmarks' obvious alternative. On the
# realistic sky at full size they left 1.81x the rms of the noise-only twin (the defaults 1.26x), 67 % of
# isolated sources within 0.2 beam and 10 % (97 %), median flux ratio 0.893 (0.968) (docs/benchmarks.md).
SHALLOW_IMAGING = {"channels_out": 1, "auto_mask_sigma": 0.0, "niter": 1000}

ALLOWED_IMAGING = "a JSON object of ImagingConfig fields, each of its type and in its range"

# What each ImagingConfig field may hold: (type, lower, upper, lower open, upper open) or a set of strings.
# Bounds are where the imagers or the rules stop making sense, not tuned limits.
_INT, _FLOAT, _BOOL = "an integer", "a number", "true or false"
IMAGING_FIELD_RULES: dict[str, tuple] = {
    "imager": ({"wsclean", "tclean"},),
    "weighting": ({"briggs", "natural"},),
    "robust": (_FLOAT, -2.0, 2.0, False, False),  # Briggs' robustness runs from -2 (uniform) to 2 (natural)
    "pixels_per_beam": (_FLOAT, 0.0, None, True, False),
    "dense_pixels_per_beam": (_FLOAT, 0.0, None, False, False),  # 0 = pixels_per_beam always
    "dense_min_antennas": (_INT, 0, None, False, False),
    "field_fwhm": (_FLOAT, 0.0, None, True, False),
    "max_size_px": (_INT, 1, None, False, False),
    "min_size_px": (_INT, 1, None, False, False),
    "niter": (_INT, 0, None, False, False),
    "threshold_sigma": (_FLOAT, 0.0, None, False, False),
    "mgain": (_FLOAT, 0.0, 1.0, False, False),  # 0 = chosen by the data
    "deep_clean_min_uv_cells": (_FLOAT, 0.0, None, False, False),
    "sparse_niter": (_INT, 0, None, False, False),
    "nmiter": (_INT, 1, None, False, False),
    "clean_budget_s": (_FLOAT, 0.0, None, False, False),  # 0 = no limit
    "wgridder_accuracy": (_FLOAT, 0.0, 1.0, True, True),  # a relative error
    "auto_mask_sigma": (_FLOAT, 0.0, None, False, False),  # 0 = off
    "known_source_sigma": (_FLOAT, 0.0, None, False, False),  # 0 = off; <= auto_mask_sigma (checked together)
    "channels_out": (_INT, 1, None, False, False),
    "spectral_terms": (_INT, 1, None, False, False),  # <= channels_out (checked with the fields together)
    "chan_average": (_INT, 0, None, False, False),  # 0 = chosen by the data, 1 = none
    "max_smearing_loss": (_FLOAT, 0.0, 1.0, False, True),  # fractions of a peak
    "max_merge_loss": (_FLOAT, 0.0, 1.0, False, True),
    "max_time_smearing_loss": (_FLOAT, 0.0, 1.0, False, True),
    "briggs_in_copy": (_BOOL,),
    "pb_limit": (_FLOAT, 0.0, 1.0, True, True),  # a primary-beam response
    "pb_time_samples": (_INT, 1, None, False, False),
    "initial_images_by_ducc0": (_BOOL,),
    "initial_images_min_uv_cells": (_FLOAT, 0.0, None, False, False),
    "threads": (_INT, 1, None, False, False),
    "restoring_beam": ({"main_lobe", "fit"},),
    "subtract_outside": (_BOOL,),
    "subtract_drift": (_BOOL,),
}


def _unknown_key(key: Any, known: set) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return f"unknown key {key!r} (not an ImagingConfig field{hint})"


def _field_problem(name: str, value: Any) -> tuple[str, str] | None:
    """(name, "name=value is not allowed: ...") when ``value`` cannot be ImagingConfig's ``name``; else None."""
    rule = IMAGING_FIELD_RULES[name]
    if isinstance(rule[0], set):
        if value in rule[0]:
            return None
        return name, f"{name}={value!r} is not allowed (one of {', '.join(sorted(rule[0]))})"
    kind = rule[0]
    if kind == _BOOL:
        ok = isinstance(value, bool)
    elif kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    lo, hi, lo_open, hi_open = (rule[1:] + (None, None, False, False))[:4]
    bounds = []
    if lo is not None:
        bounds.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        bounds.append(f"{'<' if hi_open else '<='} {hi:g}")
    allowed = kind + (f" {' and '.join(bounds)}" if bounds else "")
    if ok and lo is not None and (value < lo or (lo_open and value == lo)):
        ok = False
    if ok and hi is not None and (value > hi or (hi_open and value == hi)):
        ok = False
    return None if ok else (name, f"{name}={value!r} is not allowed ({allowed})")


# arcsec digits the imagers are told the cell with (run_wsclean's -scale, tclean's cell): the copy's Briggs
# weights are made on the grid the imagers will use, so on the rounded cell
CELL_DECIMALS = 4


def cell_arcsec(max_baseline_m: float, max_freq_hz: float, pixels_per_beam: float = 4.0) -> float:
    """Cell size sampling the finest resolution (lambda_min / B_max) with ``pixels_per_beam`` pixels."""
    if max_baseline_m <= 0:
        raise ValueError(f"max_baseline_m must be positive, got {max_baseline_m}")
    resolution_rad = C_M_S / max_freq_hz / max_baseline_m
    return float(np.degrees(resolution_rad) * 3600.0 / pixels_per_beam)


def image_size_px(cell: float, min_freq_hz: float, config: ImagingConfig = ImagingConfig()) -> int:
    """Even image side (pixels) covering ``field_fwhm`` primary-beam FWHMs, within the configured bounds."""
    side_arcsec = config.field_fwhm * np.degrees(fwhm_rad(min_freq_hz)) * 3600.0
    n = int(np.ceil(side_arcsec / cell / 2.0) * 2)
    return int(np.clip(n, config.min_size_px, config.max_size_px))


def image_grid(
    max_baseline_m: float, min_freq_hz: float, max_freq_hz: float, config: ImagingConfig
) -> tuple[float, int]:
    """(cell arcsec, size px) of the image of a chunk with this longest baseline and band.

    The cell of :func:`cell_arcsec` rounded to CELL_DECIMALS, as the imagers are told it, then the size of
    :func:`image_size_px` for that cell.
    """
    cell = round(cell_arcsec(max_baseline_m, max_freq_hz, config.pixels_per_beam), CELL_DECIMALS)
    return cell, image_size_px(cell, min_freq_hz, config)


def image_half_side_deg(max_baseline_m: float, min_freq_hz: float, max_freq_hz: float, config: ImagingConfig) -> float:
    """Half the side (deg) of the image the job will make of a chunk with this longest baseline and band.

    The grid of :func:`image_grid`, so ``max_size_px`` clips it as it clips the image: what lies beyond is
    outside the image, whatever ``field_fwhm`` asks for. (The copy's grid follows the longest baseline with
    unflagged data, a few pixels' difference at most when the longest is flagged.)
    """
    cell, size = image_grid(max_baseline_m, min_freq_hz, max_freq_hz, config)
    return 0.5 * size * cell / 3600.0


def expected_image_noise_jy(
    n_unflagged_cross_vis: int, channel_width_hz: float, integration_s: float, sefd_jy: float = SEFD_JY
) -> float:
    """Radiometer noise of a naturally weighted Stokes I image.

    Each unflagged cross-correlation visibility (one polarisation, one channel, one integration)
    has sigma = SEFD / sqrt(2 dnu tau) per real part; Stokes I averages XX and YY, and an image
    pixel averages the real parts of all of them: sigma_I = sigma_vis / sqrt(N_vis).
    """
    if n_unflagged_cross_vis <= 0:
        raise ValueError("no unflagged visibilities")
    sigma_vis = sefd_jy / np.sqrt(2.0 * channel_width_hz * integration_s)
    return float(sigma_vis / np.sqrt(n_unflagged_cross_vis))


def smearing_loss(bin_width_hz: float, freq_hz: float, radius_rad: float, resolution_rad: float) -> float:
    """Fractional loss of a point source's peak from averaging ``bin_width_hz`` of bandwidth.

    The source lies at ``radius_rad`` from the phase centre: it is smeared radially over b = r dnu / nu, and the
    peak is the mean of a Gaussian beam (FWHM ``resolution_rad``) over that segment,
    ``sqrt(pi) erf(g b / 2) / (g b)`` with b in beams and g = 2 sqrt(ln 2) (Thompson, Moran & Swenson 6.4).
    """
    from math import erf, log, pi, sqrt

    b = bin_width_hz / freq_hz * radius_rad / resolution_rad
    if b <= 0:
        return 0.0
    g = 2.0 * sqrt(log(2.0))
    return float(1.0 - sqrt(pi) * erf(g * b / 2.0) / (g * b))


def channel_bin(
    n_chan: int, channel_width_hz: float, freq_min_hz: float, max_baseline_m: float, max_loss: float = 0.03
) -> int:
    """Channels to average: the largest divisor of ``n_chan`` that loses at most ``max_loss``; 1 if none does.

    The loss is the smearing of an averaged channel for a source at the primary beam's half-power
    radius (at the lowest frequency).
    """
    radius = 0.5 * fwhm_rad(freq_min_hz)
    resolution = C_M_S / freq_min_hz / max_baseline_m
    best = 1
    for b in range(1, n_chan + 1):
        if n_chan % b == 0 and smearing_loss(b * channel_width_hz, freq_min_hz, radius, resolution) <= max_loss:
            best = b
    return best


def time_merge_loss(uvw_m: np.ndarray, freqs_hz: np.ndarray, radius_rad: float) -> float:
    """Fractional peak loss of a point source at ``radius_rad`` when spectral windows share one row.

    The windows were measured at slightly different times but share one row, and so one uvw, their
    mean.

    ``uvw_m`` (n_spw, 3, n_row) holds each window's true uvw for the same baseline and integration;
    ``freqs_hz`` (n_spw,) a representative frequency per window. Labelling a visibility with the
    mean uvw instead of its own shifts its phase by 2 pi (du l + dv m + dw (n - 1)) for a source at
    (l, m); in the worst direction at radius r that is 2 pi (|d(u,v)| r + |dw| r^2 / 2) wavelengths.
    The loss is 1 - the mean cosine of that phase over windows and rows (a source's peak is the mean
    of its visibilities' real parts after phasing to it).
    """
    uvw = np.asarray(uvw_m, dtype=float)
    d = uvw - uvw.mean(axis=0)
    d_uv = np.hypot(d[:, 0], d[:, 1])
    d_w = np.abs(d[:, 2])
    turns = _worst_direction_turns(d_uv, d_w, radius_rad) * (np.asarray(freqs_hz, dtype=float)[:, None] / C_M_S)
    return float(1.0 - np.mean(np.cos(2.0 * np.pi * turns)))


def _worst_direction_turns(d_uv, d_w, radius_rad: float) -> np.ndarray:
    """Phase error in turns, in the worst direction at ``radius_rad``, of a visibility with a wrong uvw.

    The visibility's (u, v) is off by ``d_uv`` and w by ``d_w``: the error is
    |d(u,v)| r + |dw| r^2 / 2 (the w term through n - 1 ~ -r^2 / 2).
    """
    return np.asarray(d_uv, float) * radius_rad + np.abs(np.asarray(d_w, float)) * radius_rad**2 / 2.0


def time_smearing_loss(uv_rate_wl_s, w_rate_wl_s, averaging_s, radius_rad: float) -> np.ndarray:
    """Fractional loss of a point source's peak at ``radius_rad`` from averaging a baseline over ``averaging_s``.

    The baseline's (u, v) and w change at the rates given (wavelengths per second).

    The visibility phase 2 pi (u l + v m + w (n - 1)) then drifts linearly by
    dphi = 2 pi (|duv/dt| r + |dw/dt| r^2 / 2) T in the worst direction, and the mean of exp(i phi)
    over the interval is sin(dphi / 2) / (dphi / 2) (Thompson, Moran & Swenson 6.4, for a ramp).
    """
    turns = _worst_direction_turns(uv_rate_wl_s, w_rate_wl_s, radius_rad) * np.asarray(averaging_s, float)
    return 1.0 - np.sinc(turns)  # np.sinc(x) = sin(pi x) / (pi x), and dphi / 2 = pi * turns


def baseline_time_bins(
    uv_rate_wl_s, w_rate_wl_s, integration_s: float, max_bin: int, radius_rad: float, max_loss: float = 0.03
) -> np.ndarray:
    """Integrations to average per baseline, between 1 and ``max_bin``.

    That is the largest k <= ``max_bin`` whose time smearing over k integrations loses at most
    ``max_loss`` at ``radius_rad``, and never less than 1 (a baseline that already smears more in one
    integration keeps its integrations as they are).
    """
    uv = np.asarray(uv_rate_wl_s, float)
    w = np.asarray(w_rate_wl_s, float)
    bins = np.ones(uv.shape, dtype=int)
    growing = np.ones(uv.shape, dtype=bool)  # stop at the first k that smears too much (sinc's far lobes)
    for k in range(2, max(int(max_bin), 1) + 1):
        growing &= time_smearing_loss(uv, w, k * integration_s, radius_rad) <= max_loss
        bins[growing] = k
    return bins
