"""What the image child job hands back: one typed record, :class:`ImageReport`.

The job (``python -m contimg.image.job``) builds it, publishes ``to_dict()`` as its JSON report
(``contimg.childjobs.report``: a file and/or a Dagster Pipes message) and the image asset and the
catalogue writer read it back with :meth:`ImageReport.from_dict`. The field names are the JSON keys
that tests, benchmarks and ``docs/conventions.md`` read, so renaming one is a change of contract.
Importable without CASA or Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

__all__ = ["ImageReport"]


@dataclass(frozen=True)
class ImageReport:
    """The products, QA figures and provenance of one chunk's image.

    The first group of fields is what every image row of the catalogue holds and must be given;
    the rest says how the job made the image, and defaults to "not reported" (or, for the imaging
    copy's figures, to the product imaged as it is: no averaging, no merged windows).
    """

    # products (absolute paths)
    image: str  # PREFIX.fits, Stokes I, Jy/beam
    pbcor: str  # PREFIX.pbcor.fits, primary-beam corrected (NaN below ImagingConfig.pb_limit)
    pb: str  # PREFIX.pb.fits, the chunk's effective primary beam
    png: str  # PREFIX.png thumbnail
    imager: str  # "wsclean" or "tclean" (what actually made the image)
    calibrated: bool
    # QA (contimg.image.qa.image_qa)
    rms_jy: float  # Jy/beam, robust rms of the residual
    expected_rms_jy: float  # Jy/beam, radiometer noise for the weights imaged
    peak_jy: float  # Jy/beam
    dynamic_range: float
    n_sources_5sigma: int
    # restoring beam and grid
    bmaj_arcsec: float
    bmin_arcsec: float
    bpa_deg: float
    cell_arcsec: float
    size_px: int
    flagged_fraction: float  # of the cross-correlation data imaged (after calibration)

    # how it was made
    casa_image: str | None = None  # PREFIX.image when tclean made the image
    data_column: str = ""  # "DATA" or "CORRECTED_DATA" (CASA applycal in place)
    caltables: list[str] = field(default_factory=list)  # applied, in apply order
    calset: str | None = None
    window: str | None = None  # the partition key
    mid_mjd: float | None = None
    chan_bin: int = 1  # channels averaged into the imaging copy
    merged_spws: bool = False  # the subbands in one spectral window of the copy
    merge_loss: float | None = None  # contimg.image.rules.time_merge_loss, None when they could not merge
    rows_kept_fraction: float = 1.0  # rows of the copy after time averaging / before
    max_time_bin: int = 1  # integrations averaged at most on one baseline
    weighting: str = ""  # as imaged, e.g. "briggs 0 (imaging weights in the copy)"
    mgain: float = 0.0  # WSClean's major-cycle gain used
    effective_uv_cells: float | None = None  # of the copy's Briggs weights (contimg.image.weighting)
    initial_images: str | None = None  # who made WSClean's first PSF and dirty image: "ducc0" or the imager
    timings_s: dict[str, float] = field(default_factory=dict)  # wall seconds per step
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per step, workers and WSClean included
    warnings: list[str] = field(default_factory=list)
    config: str | None = None  # the ImagingConfig as JSON
    code_version: str | None = None
    # science QA (contimg.image.sources, contimg.image.crossmatch)
    sources: str | None = None  # PREFIX.sources.fits, the source list (PyBDSF)
    n_detections: int | None = None  # rows of the source list
    science_grade: str | None = None  # green, amber, red, ungraded; None without a reference catalogue
    science_qa: dict[str, Any] | None = None  # contimg.image.crossmatch.ScienceQA.as_dict(); None without one
    # catalogue sources beyond the image's edge subtracted before imaging (contimg.image.subtract.OutsideSources
    # .summary(): n_sources, apparent_flux_jy, ...); None when nothing was subtracted or no catalogue was given
    outside_subtracted: dict[str, Any] | None = None
    # catalogue sources at which the masked clean went to known_source_sigma (contimg.image.known_sources); None when
    # it did not (no catalogue, a dense array, no auto-mask, or tclean)
    known_sources_in_mask: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able report (``dataclasses.asdict``): one key per field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageReport:
        """The report read back from the job's JSON.

        Parameters
        ----------
        data : mapping
            Keys are field names; the fields of the first group must all be there.

        Returns
        -------
        ImageReport

        Raises
        ------
        TypeError
            If ``data`` is not a mapping.
        ValueError
            If ``data`` lacks a required key or holds a key that is not a field (a job and a reader
            of different versions, or a typo): the message names them.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"an image report is a mapping of its fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        unknown = sorted(set(data) - known)
        missing = [name for name in required if name not in data]
        if unknown or missing:
            raise ValueError(
                f"not an image report: missing key(s) {missing or 'none'}, unknown key(s) "
                f"{unknown or 'none'}; the keys are the fields of contimg.image.report.ImageReport"
            )
        return cls(**data)
