"""The image job's failures: one it reports (ImagingError), two it works around (UnsupportedTables, CleanOverBudget)."""

from __future__ import annotations

__all__ = ["CleanOverBudget", "ImagingError", "UnsupportedTables"]


class ImagingError(RuntimeError):
    """The chunk cannot be imaged (all data flagged, an imager failed): the job exits 1 with the message."""


class UnsupportedTables(Exception):
    """Tables or a layout the imaging copy cannot handle; the job then falls back on CASA's applycal.

    The cases are several solution times, tables that are not B/G, and windows whose rows are not
    contiguous: the job images the product itself, calibrated by CASA's applycal.
    """


class CleanOverBudget(ImagingError):
    """WSClean was stopped at ImagingConfig.clean_budget_s: the job images again with the quick look.

    ``cpu_s`` holds the CPU seconds WSClean had spent.
    """

    cpu_s: float = 0.0
