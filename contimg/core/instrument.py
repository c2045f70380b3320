"""The DSA-110 instrument model: site, stations, dish, spectral and time layout.

Every number here is a fact about the telescope (see ``../shared/design/upstream-lessons.md`` §1
and ``contimg/data/README.md``); the simulator, the converter and the imager all read them from
this one place.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation

__all__ = [
    "CHANNEL_WIDTH_HZ",
    "CHUNK_DURATION_S",
    "DISH_DIAMETER_M",
    "INACTIVE_STATIONS",
    "INTEGRATION_S",
    "N_CHAN_PER_SUBBAND",
    "N_INTEGRATIONS",
    "N_SUBBANDS",
    "POLARIZATION_ARRAY",
    "SEFD_JY",
    "SITE",
    "SUBBAND_WIDTH_HZ",
    "TELESCOPE_NAME",
    "Correlator",
    "Stations",
    "active_station_numbers",
    "correlator",
    "load_stations",
    "select_stations",
    "subband_freqs_hz",
]

# CASA knows the observatory as OVRO_MMA (the raw headers' name); this is CASA's position for it
# (casatools.measures().observatory('OVRO_MMA'): lon -2.0644277991 rad, lat 0.6498455107 rad,
# 1188.0519 m), so LSTs computed here and by CASA agree.
TELESCOPE_NAME = "OVRO_MMA"
SITE = EarthLocation.from_geodetic(
    lon=np.degrees(-2.064427799136453) * u.deg,
    lat=np.degrees(0.6498455107238486) * u.deg,
    height=1188.0519 * u.m,
)

DISH_DIAMETER_M = 4.65  # 4.7 m appears in old code and is wrong
SEFD_JY = 6500.0  # per antenna

N_SUBBANDS = 16
N_CHAN_PER_SUBBAND = 48


@dataclass(frozen=True)
class Correlator:
    """The correlator's published spectral settings (``contimg/core/data/correlator_parameters.yaml``).

    Raw channel ``i`` (0..``n_raw_chan`` - 1) is labelled ``f0_hz - i * raw_channel_hz`` (the
    channels descend from 1.53 GHz); subband ``sb`` is written by the correlator node whose first
    raw channel is the ``sb``-th lowest, ``first_raw_channel[sb]``, and holds ``raw_per_subband``
    raw channels averaged ``nfreq_int`` at a time.
    """

    f0_hz: float
    raw_channel_hz: float
    n_raw_chan: int
    raw_per_subband: int
    nfreq_int: int
    first_raw_channel: tuple  # per subband, sb00 first

    def raw_label_hz(self, raw_channel) -> np.ndarray:
        """The correlator's label of raw channel(s) ``raw_channel``, in Hz."""
        return self.f0_hz - np.asarray(raw_channel, dtype=float) * self.raw_channel_hz


@lru_cache(maxsize=1)
def correlator() -> Correlator:
    """Read the correlator's spectral settings.

    Raises
    ------
    ValueError
        If the file lacks a setting, its channels ascend, the nodes' first channels are not
        ``N_SUBBANDS`` contiguous blocks of ``nchan_spw`` raw channels, or those do not average
        (``nfreq_int``) to ``N_CHAN_PER_SUBBAND`` channels.
    """
    import yaml

    text = resources.files("contimg.core.data").joinpath("correlator_parameters.yaml").read_text()
    par = yaml.safe_load(text)
    try:
        n_raw, per_sb, nfreq_int = int(par["nchan"]), int(par["nchan_spw"]), int(par["nfreq_int"])
        f0_hz, raw_hz = float(par["f0_GHz"]) * 1e9, float(par["bw_GHz"]) * 1e9 / n_raw
        ascending = bool(par["chan_ascending"])
        # correlator nodes are corrNN; other hosts (dsaenv01) are not subband writers
        firsts = sorted(int(v) for k, v in par["ch0"].items() if re.fullmatch(r"corr\d+", str(k)))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"correlator_parameters.yaml: missing or malformed setting ({err})") from err
    if ascending:
        raise ValueError("correlator_parameters.yaml: chan_ascending is true; the subband layout assumes descending")
    if len(firsts) != N_SUBBANDS or np.any(np.diff(firsts) != per_sb) or per_sb != nfreq_int * N_CHAN_PER_SUBBAND:
        raise ValueError(
            f"correlator_parameters.yaml: ch0 of the corr nodes {firsts} are not {N_SUBBANDS} contiguous "
            f"blocks of nchan_spw={per_sb} averaged by nfreq_int={nfreq_int} to {N_CHAN_PER_SUBBAND}"
        )
    return Correlator(
        f0_hz=f0_hz,
        raw_channel_hz=raw_hz,
        n_raw_chan=n_raw,
        raw_per_subband=per_sb,
        nfreq_int=nfreq_int,
        first_raw_channel=tuple(firsts),
    )


SUBBAND_WIDTH_HZ = correlator().raw_per_subband * correlator().raw_channel_hz  # 384 x 30.517578125 kHz
CHANNEL_WIDTH_HZ = SUBBAND_WIDTH_HZ / N_CHAN_PER_SUBBAND  # 244.140625 kHz

INTEGRATION_S = 96 * 0.134217728  # 12.884901888 s
N_INTEGRATIONS = 24
CHUNK_DURATION_S = N_INTEGRATIONS * INTEGRATION_S  # 309.24 s

POLARIZATION_ARRAY = np.array([-5, -6])  # XX, YY

INACTIVE_STATIONS = frozenset([10, 21, 22, 23, *range(52, 68), 117])
_MISSING_ELEVATION_M = 1182.6  # DSA-117 has none in the table; its neighbours sit at 1182.6 m


@dataclass(frozen=True)
class Stations:
    """The station table: one entry per station, ordered by station number."""

    number: np.ndarray  # (N,) int, 1..117
    name: np.ndarray  # (N,) str, "DSA-001".."DSA-117"
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    height_m: np.ndarray
    itrf_m: np.ndarray  # (N, 3) geocentric X, Y, Z

    def index_of(self, numbers) -> np.ndarray:
        """Row indices of the given station numbers."""
        lookup = {int(n): i for i, n in enumerate(self.number)}
        try:
            return np.array([lookup[int(n)] for n in numbers], dtype=int)
        except KeyError as err:
            raise ValueError(f"unknown station number {err.args[0]}; known: 1..{len(self.number)}") from err


@lru_cache(maxsize=1)
def load_stations() -> Stations:
    """Read the 117-station table shipped in ``contimg/data``.

    Raises
    ------
    ValueError
        If a row cannot be parsed.
    """
    text = resources.files("contimg.core.data").joinpath("DSA110_Station_Coordinates.csv").read_text()
    rows = []
    for line in csv.reader(text.splitlines()):
        if len(line) < 4 or not re.fullmatch(r"DSA-\d{3}", line[1].strip()):
            continue
        name, lat, lon = line[1].strip(), line[2].strip(), line[3].strip()
        elev = line[4].strip() if len(line) > 4 else ""
        try:
            rows.append((int(name[4:]), name, float(lat), float(lon), float(elev) if elev else _MISSING_ELEVATION_M))
        except ValueError as err:
            raise ValueError(f"station table: cannot parse row {line!r}") from err
    rows.sort()
    number, name, lat, lon, height = (np.array(col) for col in zip(*rows, strict=True))
    loc = EarthLocation.from_geodetic(lon=lon * u.deg, lat=lat * u.deg, height=height * u.m)
    itrf = np.stack([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)], axis=1)
    return Stations(number=number.astype(int), name=name, lat_deg=lat, lon_deg=lon, height_m=height, itrf_m=itrf)


def active_station_numbers() -> np.ndarray:
    """The 96 stations that carry data (47 E-W, 35 N-S, 14 outriggers)."""
    numbers = load_stations().number
    return np.array([n for n in numbers if n not in INACTIVE_STATIONS], dtype=int)


def select_stations(n_antennas: int) -> np.ndarray:
    """Pick ``n_antennas`` active stations spread over both arms and the outriggers.

    The full array (96) is every active station. Smaller arrays, used by tests, take stations from
    the E-W arm, the N-S arm and the outriggers in proportion to their counts (each arm's ends
    plus a fixed pseudo-random choice inside), so the synthesized beam keeps the array's shape
    without the grating lobes of a regular subset.
    """
    active = active_station_numbers()
    if not 3 <= n_antennas <= len(active):
        raise ValueError(f"n_antennas must be between 3 and {len(active)}, got {n_antennas}")
    if n_antennas == len(active):
        return active
    arms = [active[active <= 51], active[(active >= 52) & (active <= 102)], active[active >= 103]]
    shares = np.array([len(a) for a in arms], dtype=float) / len(active) * n_antennas
    counts = np.maximum(1, np.floor(shares)).astype(int)
    while counts.sum() < n_antennas:  # hand the remainder to the arms that lost the most
        counts[np.argmax(shares - counts)] += 1
    while counts.sum() > n_antennas:
        counts[np.argmax(counts)] -= 1
    # Irregular (fixed-seed) picks within each arm, ends included: evenly spaced picks on the regular
    # 5.75 m pads give grating lobes about a degree out, inside small test images.
    rng = np.random.default_rng(110)
    picked = []
    for arm, k in zip(arms, counts, strict=True):
        inner = np.sort(rng.choice(np.arange(1, len(arm) - 1), size=max(0, k - 2), replace=False)) if k > 2 else []
        idx = ([0] if k >= 1 else []) + list(inner) + ([len(arm) - 1] if k >= 2 else [])
        picked.extend(arm[np.array(idx, dtype=int)])
    return np.sort(np.array(picked, dtype=int))


def subband_freqs_hz(subband: int, n_chan: int = N_CHAN_PER_SUBBAND) -> np.ndarray:
    """The correlator's channel labels of one subband, in file order (descending), in Hz.

    Each channel is labelled with the mean of the labels of the raw correlator channels it
    averages: with the production 48 channels, 8 raw channels each (sb00 channel 0: 1498.643188
    MHz, then steps of -244.140625 kHz). With fewer channels (small test data) the same subband is
    split into ``n_chan`` wider channels labelled the same way.

    Parameters
    ----------
    subband : int
        0..15; sb00 is the highest.
    n_chan : int
        Channels per subband; must divide the subband's 384 raw channels.

    Returns
    -------
    numpy.ndarray
        Shape (n_chan,), descending.

    Raises
    ------
    ValueError
        If ``subband`` or ``n_chan`` is out of range.
    """
    cor = correlator()
    if not 0 <= subband < N_SUBBANDS:
        raise ValueError(f"subband must be 0..{N_SUBBANDS - 1}, got {subband}")
    if n_chan < 1 or cor.raw_per_subband % n_chan:
        raise ValueError(f"n_chan must divide the subband's {cor.raw_per_subband} raw channels, got {n_chan}")
    raw_per_chan = cor.raw_per_subband // n_chan
    first = cor.first_raw_channel[subband] + np.arange(n_chan) * raw_per_chan
    # the mean of the labels of raw channels first .. first + raw_per_chan - 1 (labels are linear in i)
    return cor.raw_label_hz(first + (raw_per_chan - 1) / 2.0)
