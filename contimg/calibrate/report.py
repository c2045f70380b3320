"""What the calibrate child job hands back: a typed report (pure; no CASA, no Dagster).

The job builds a :class:`CalibrateReport` and publishes ``report.to_dict()`` through
``contimg.childjobs.report.report`` (a JSON file and/or a Dagster Pipes message). Whoever reads it
(the ``caltable_set`` asset, ``contimg calibrate``, the caltable registry) turns the dict back into
a report with :meth:`CalibrateReport.from_dict`, which names any missing or unknown key, so a
change on one side of the process boundary fails loudly on the other instead of as a ``KeyError``
deep in an asset.

The JSON keys are the field names; tests, benchmarks and docs read them
(``report["plan"]["transit_mjd"]``, ``report["flagging"]["rfi_flagged_fraction"]``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from contimg.calibrate.bandpass_qa import BandpassQA

__all__ = [
    "CalTable",
    "CalibrateReport",
    "FlaggingStats",
    "ReportFormatError",
    "SolveModel",
    "SolvePlan",
    "TableQuality",
]


class ReportFormatError(ValueError):
    """A calibrate report (or one of its parts) with missing or unknown keys."""


def _checked(cls: type, data: Any, where: str) -> dict:
    """``data`` as a dict holding exactly the fields of dataclass ``cls``.

    Raises
    ------
    ReportFormatError
        If ``data`` is not a mapping, or lacks a field, or has a key that is not a field.
    """
    if not isinstance(data, Mapping):
        raise ReportFormatError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in data]
    unknown = sorted(str(k) for k in data if k not in names)
    if missing or unknown:
        problems = ([f"missing key(s) {missing}"] if missing else []) + (
            [f"unknown key(s) {unknown}"] if unknown else []
        )
        raise ReportFormatError(f"{where}: {' and '.join(problems)}; a {cls.__name__} has exactly {names}")
    return dict(data)


@dataclass(frozen=True)
class TableQuality:
    """Figures of one solved table over the antennas with data (``contimg.calibrate.solutions``)."""

    flagged_fraction: float  # of the solutions (pol x chan x antenna)
    median_snr: float  # of the unflagged solutions; 0.0 when none is unflagged
    amp_scatter: float | None  # std / mean of |gain|; None when every solution is flagged
    phase_scatter_deg: float | None
    n_antennas: int

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "quality") -> TableQuality:
        """A TableQuality from its dict form; ``where`` names it in a ReportFormatError (a key missing or unknown)."""
        return cls(**_checked(cls, data, where))


@dataclass(frozen=True)
class CalTable:
    """One table of a set: ``name`` inside the set's folder, CASA type, apply order, quality, full path."""

    name: str  # e.g. "2026-01-25T0000.B"
    type: str  # "K", "B" or "G"
    order: int  # apply order: lower first (contimg.calibrate.registry_rules.APPLY_ORDER)
    quality: TableQuality
    path: str

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "table") -> CalTable:
        """A CalTable, its quality included, from its dict form; ``where`` names it in a ReportFormatError."""
        d = _checked(cls, data, where)
        return cls(**{**d, "quality": TableQuality.from_dict(d["quality"], f"{where}.quality")})


@dataclass(frozen=True)
class SolveModel:
    """The point-source model the solve used (apparent flux at 1.4 GHz, through the drift-averaged beam)."""

    flux_jy: float
    spectral_index: float
    ra_deg: float
    dec_deg: float

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "model") -> SolveModel:
        """A SolveModel from its dict form; ``where`` names it in a ReportFormatError (a key missing or unknown)."""
        return cls(**_checked(cls, data, where))


@dataclass(frozen=True)
class FlaggingStats:
    """Flagging before the solve, as fractions of the cross-correlation samples read."""

    flagged_fraction_input: float  # flagged, zero, non-finite or zero-weight in the MS
    rfi_flagged_fraction: float  # newly flagged by the RFI pass (0 with --no-rfi)
    uvw_column_vs_casa_m: float  # worst |w| difference between the UVW column and CASA's uvw

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "flagging") -> FlaggingStats:
        """A FlaggingStats from its dict form; ``where`` names it in a ReportFormatError (a key missing or unknown)."""
        return cls(**_checked(cls, data, where))


@dataclass(frozen=True)
class SolvePlan:
    """The calibrator chosen for a chunk and the model to solve with (``contimg.calibrate.plan.plan_solve``)."""

    name: str  # VLA name, e.g. "0834+555"
    ra_deg: float  # J2000
    dec_deg: float
    flux_jy: float  # catalogue 20 cm flux
    transit_mjd: float
    offset_deg: float  # |dec - pointing dec| at transit
    pb_flux_jy: float  # catalogue flux through the primary beam at transit
    mean_beam: float  # primary-beam response averaged over the chunk's drift (1.4 GHz)
    apparent_flux_jy: float  # flux_jy x mean_beam: the model's flux
    intrinsic_spectral_index: float  # from the catalogue, 0 where it has none
    beam_spectral_index: float  # the beam's tilt across the band
    spectral_index: float  # the model's: intrinsic + beam

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "plan") -> SolvePlan:
        """A SolvePlan from its dict form; ``where`` names it in a ReportFormatError (a key missing or unknown)."""
        return cls(**_checked(cls, data, where))


def _bandpass_qa(data: Any, where: str) -> BandpassQA:
    """A BandpassQA from its dict form; a missing or unknown key is a ReportFormatError naming ``where``."""
    return BandpassQA(**_checked(BandpassQA, data, where))


@dataclass(frozen=True)
class CalibrateReport:
    """Everything the calibrate job reports about one solved set."""

    set_name: str
    calibrator: str
    refant: int  # 0-based antenna id
    tables: list[CalTable]  # in apply order
    model: SolveModel
    quality_ok: bool
    problems: list[str]  # why quality failed; empty when quality_ok
    out_dir: str
    source_ms: str
    bandpass_png: str
    bandpass_qa: BandpassQA  # per-antenna figures and outliers of the B table; its problems are in ``problems``
    timings_s: dict[str, float]  # per step of the solve
    solver_version: str
    solver_params: dict
    flagging: FlaggingStats
    plan: SolvePlan

    @classmethod
    def from_dict(cls, data: Mapping) -> CalibrateReport:
        """A report from its dict form (``to_dict()``, the job's JSON report or Pipes message).

        Raises
        ------
        ReportFormatError
            If a key is missing or unknown, at the top level or in a part (the message names the
            part, e.g. ``calibrate report.tables[1].quality``).
        """
        where = "calibrate report"
        d = _checked(cls, data, where)
        if not isinstance(d["tables"], list):
            raise ReportFormatError(f"{where}.tables: expected a list of tables, got {type(d['tables']).__name__}")
        return cls(
            **{
                **d,
                "tables": [CalTable.from_dict(t, f"{where}.tables[{i}]") for i, t in enumerate(d["tables"])],
                "model": SolveModel.from_dict(d["model"], f"{where}.model"),
                "flagging": FlaggingStats.from_dict(d["flagging"], f"{where}.flagging"),
                "plan": SolvePlan.from_dict(d["plan"], f"{where}.plan"),
                "bandpass_qa": _bandpass_qa(d["bandpass_qa"], f"{where}.bandpass_qa"),
            }
        )

    def to_dict(self) -> dict:
        """The JSON-able dict the job publishes (``dataclasses.asdict``)."""
        return asdict(self)

    def set_index(self) -> dict:
        """The ``caltables.json`` written beside the tables: the set without machine-specific paths.

        Tables are named relative to their folder, so the folder can be moved and still applied
        (``contimg image --caltables DIR`` reads it).
        """
        return {
            "set_name": self.set_name,
            "calibrator": self.calibrator,
            "refant": self.refant,
            "tables": [
                {"name": t.name, "type": t.type, "order": t.order, "quality": asdict(t.quality)} for t in self.tables
            ],
            "model": asdict(self.model),
            "quality_ok": self.quality_ok,
            "problems": list(self.problems),
        }

    def quality_by_type(self) -> dict[str, dict]:
        """``{table type: quality figures}`` as the registry stores them."""
        return {t.type: asdict(t.quality) for t in self.tables}

    def table_paths(self) -> list[str]:
        """Full paths of the tables, in the order they are listed (apply order)."""
        return [t.path for t in self.tables]
