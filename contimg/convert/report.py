"""What the convert child job reports: one typed record crossing the process boundary.

The job builds a :class:`ConvertReport` and publishes ``asdict()`` as JSON (a file and/or a Dagster
Pipes message, :func:`contimg.childjobs.report.report`); the asset and the catalogue writer read it
back with :meth:`ConvertReport.from_dict`, so a key renamed on one side fails loudly on the other.
Importable without casacore or Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

__all__ = ["ConvertReport"]


@dataclass(frozen=True)
class ConvertReport:
    """Figures of one chunk's conversion (the JSON keys are these field names)."""

    ms_path: str
    files: list  # the subband files converted, subband order
    n_subbands_present: int
    missing_subbands: list  # subband indices with no file (their SPWs are written fully flagged)
    n_rows: int
    n_antennas: int
    n_channels: int  # all 16 SPWs
    n_times: int
    start_mjd: float
    end_mjd: float
    mid_mjd: float
    phase_center_ra_deg: float
    phase_center_dec_deg: float
    pointing_dec_deg: float
    freq_min_hz: float  # lowest and highest CHAN_FREQ written (the files' own labels)
    freq_max_hz: float
    weight_spectrum: bool  # True when some row's nsamples vary across its channels
    flagged_fraction: float
    nan_flagged: int  # (row, channel) pairs with a non-finite visibility, zeroed and flagged
    checks: dict  # name -> {"passed": bool, "value": ..., "limit": ...}
    timings_s: dict  # step -> seconds
    bytes_in: int
    peak_rss_mb: float
    workers: int
    code_version: str
    worker_peak_rss_mb: float | None = None  # None when everything ran in the job's own process

    @property
    def checks_passed(self) -> bool:
        """True when every post-conversion check passed."""
        return all(c["passed"] for c in self.checks.values())

    def asdict(self) -> dict:
        """The report as a JSON-able dict (what the job publishes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConvertReport:
        """Read a report published by the convert job.

        Raises
        ------
        TypeError
            If ``data`` is not a mapping.
        ValueError
            If a key is missing or unknown (the job and its reader disagree on the report), naming it.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"convert report: expected a mapping of figures, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        unknown = sorted(set(data) - known)
        missing = sorted(required - set(data))
        if unknown or missing:
            raise ValueError(
                "convert report: "
                + "; ".join(
                    part
                    for part in (
                        f"missing key(s) {missing}" if missing else "",
                        f"unknown key(s) {unknown}" if unknown else "",
                    )
                    if part
                )
                + f" (expected the fields of ConvertReport: {sorted(known)})"
            )
        return cls(**dict(data))
