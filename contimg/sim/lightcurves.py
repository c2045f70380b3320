"""Light curves of variable sources (#23): a source's flux factor on a given day.

A sky CSV's optional ``lightcurve`` column holds one term or several joined by ``;`` (their factors
multiply); days are whole days from the light curves' epoch (``simulate(day_index=k)``):

| term | factor on day k |
| --- | --- |
| empty | 1 (constant) |
| ``dip:D:A:B`` | 1 - D for A <= k <= B (a D = 0.4 dip is 40 % fainter), else 1 |
| ``flare:F:A:B`` | 1 + F for A <= k <= B (F = 2.0 triples the flux), else 1 |
| ``sine:M:P`` or ``sine:M:P:Z`` | 1 + M sin(2 pi (k - Z) / P) (Z, the zero-phase day, defaults to 0) |
"""

from __future__ import annotations

import math

__all__ = ["parse_lightcurve", "flux_factor"]

_KINDS = {"dip": (3,), "flare": (3,), "sine": (2, 3)}


def parse_lightcurve(spec: str) -> list[tuple]:
    """Parse a light-curve string into ``(kind, *numbers)`` terms.

    Raises
    ------
    ValueError
        On an unknown kind, a wrong number of fields, a value that is not a number, a dip outside
        [0, 1], a flare below -1, a sine amplitude outside [0, 1], a non-positive period or a
        window that ends before it starts; quoting the term.
    """
    terms = []
    for term in filter(None, (t.strip() for t in (spec or "").split(";"))):
        kind, *rest = term.split(":")
        if kind not in _KINDS or len(rest) not in _KINDS[kind]:
            raise ValueError(
                f"bad light curve {term!r}: expected dip:DEPTH:FIRST_DAY:LAST_DAY, flare:AMP:FIRST_DAY:LAST_DAY "
                "or sine:AMP:PERIOD_DAYS[:ZERO_DAY]"
            )
        try:
            values = [float(v) for v in rest]
        except ValueError:
            raise ValueError(f"bad light curve {term!r}: fields must be numbers") from None
        if kind == "dip" and not 0.0 <= values[0] <= 1.0:
            raise ValueError(f"bad light curve {term!r}: a dip's depth is a fraction from 0 to 1")
        if kind == "flare" and values[0] < -1.0:
            raise ValueError(f"bad light curve {term!r}: a flare's amplitude is >= -1")
        if kind in ("dip", "flare") and values[2] < values[1]:
            raise ValueError(f"bad light curve {term!r}: the last day comes before the first")
        if kind == "sine" and (values[1] <= 0 or not 0.0 <= values[0] <= 1.0):
            raise ValueError(f"bad light curve {term!r}: amplitude from 0 to 1, period > 0 days")
        terms.append((kind, *values))
    return terms


def flux_factor(spec: str, day: float) -> float:
    """The factor the flux is multiplied by on ``day`` (days from the light curves' epoch)."""
    factor = 1.0
    for kind, *v in parse_lightcurve(spec):
        if kind == "dip" and v[1] <= day <= v[2]:
            factor *= 1.0 - v[0]
        elif kind == "flare" and v[1] <= day <= v[2]:
            factor *= 1.0 + v[0]
        elif kind == "sine":
            zero = v[2] if len(v) > 2 else 0.0
            factor *= 1.0 + v[0] * math.sin(2.0 * math.pi * (day - zero) / v[1])
    return factor
