"""Column helpers shared by the casatools child jobs that write averaged copies of an MS."""

from __future__ import annotations


def ensure_weight_spectrum(tb) -> None:
    """Add WEIGHT_SPECTRUM to the open, writable table ``tb`` if it lacks it.

    The column is float, shaped like DATA, with its own tiled manager. The product MS carries
    per-row WEIGHT when the correlator's samples are uniform over channels, but an averaged copy's
    weights vary over channels (flags, calwt), so the copies always carry them.
    """
    if "WEIGHT_SPECTRUM" in tb.colnames():
        return
    desc = dict(tb.getcoldesc("DATA"), valueType="float", dataManagerGroup="Tiled_WEIGHT_SPECTRUM")
    tb.addcols(
        {"WEIGHT_SPECTRUM": desc},
        {
            "*1": {
                "TYPE": "TiledShapeStMan",
                "NAME": "Tiled_WEIGHT_SPECTRUM",
                "SPEC": {},
                "COLUMNS": ["WEIGHT_SPECTRUM"],
            }
        },
    )
