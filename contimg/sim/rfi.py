"""Radio-frequency interference for the simulator (``simulate(rfi=True)``).

Three kinds, as the DSA-110 sees them:

- persistent narrowband RFI: a few channels, strong (50-500 Jy), on every baseline and integration;
- intermittent broadband bursts: one or two per chunk, 1-2 integrations long, every channel (20-200 Jy);
- a dead input: one antenna's subband carries no sky and no RFI (its cross-correlations are noise only,
  its autocorrelation the receiver's SEFD), for the whole simulation.

The interference is a voltage that each antenna receives with its own phase, so on baseline (i, j) it
adds ``A conj(r_i) r_j`` (autos: ``A``) before the antenna gains, like the sky. Drawn from
``(seed, RFI_TAG)`` (bursts: also the chunk's start), independent of every other random stream, so a
simulation with and without RFI differ only where the RFI is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RfiPlan", "plan_rfi", "burst_integrations", "rfi_visibilities"]

RFI_TAG = 0x4F1
N_NARROWBAND = 3
NARROWBAND_JY = (50.0, 500.0)  # log-uniform amplitude range per channel
BURST_JY = (20.0, 200.0)
N_SUBBANDS = 16


@dataclass(frozen=True)
class RfiPlan:
    """Where the persistent RFI is: channels as (subband, channel index in the file) and the dead input."""

    channels: tuple  # ((subband, channel), ...)
    amps_jy: tuple
    dead_station: int
    dead_subband: int

    def as_dict(self, freqs_of) -> dict:
        """For truth.json; ``freqs_of(sb)`` gives the subband's channel frequencies (file order)."""
        return {
            "narrowband": [
                {"subband": sb, "channel": ch, "freq_hz": float(freqs_of(sb)[ch]), "amp_jy": amp}
                for (sb, ch), amp in zip(self.channels, self.amps_jy, strict=True)
            ],
            "dead": {"station": self.dead_station, "antenna": self.dead_station - 1, "subband": self.dead_subband},
        }


def plan_rfi(seed: int, station_numbers, n_chan_per_subband: int) -> RfiPlan:
    """The persistent RFI of a simulation: ``N_NARROWBAND`` distinct channels and one dead (antenna, subband)."""
    rng = np.random.default_rng([seed, RFI_TAG])
    n_total = N_SUBBANDS * n_chan_per_subband
    flat = rng.choice(n_total, size=min(N_NARROWBAND, n_total), replace=False)
    channels = tuple((int(k // n_chan_per_subband), int(k % n_chan_per_subband)) for k in sorted(flat))
    amps = tuple(float(a) for a in np.exp(rng.uniform(*np.log(NARROWBAND_JY), len(channels))))
    stations = np.asarray(station_numbers)
    return RfiPlan(channels, amps, int(stations[rng.integers(len(stations))]), int(rng.integers(N_SUBBANDS)))


def burst_integrations(seed: int, chunk_start_mjd: float, n_integrations: int) -> list[int]:
    """The integrations (0-based, each subband's) a chunk's broadband bursts cover; seeded by the chunk's start."""
    key = int(round(chunk_start_mjd * 86400.0))
    rng = np.random.default_rng([seed, RFI_TAG, key])
    n_bursts = 1 if n_integrations < 12 else 2
    hit = set()
    for _ in range(n_bursts):
        first = int(rng.integers(n_integrations))
        length = int(rng.integers(1, 3))
        hit.update(range(first, min(first + length, n_integrations)))
    return sorted(hit)


def _phasors(rng: np.random.Generator, n_ant: int) -> np.ndarray:
    return np.exp(1j * rng.uniform(0, 2 * np.pi, n_ant))


def rfi_visibilities(
    plan: RfiPlan,
    seed: int,
    sb: int,
    n_chan: int,
    n_integrations: int,
    bursts: list[int],
    chunk_start_mjd: float,
    ant1: np.ndarray,
    ant2: np.ndarray,
    n_ant: int,
) -> np.ndarray:
    """The RFI's visibilities (T, B, F) for subband ``sb`` (before gains; zero where there is none)."""
    out = np.zeros((n_integrations, len(ant1), n_chan), dtype=np.complex128)
    for (c_sb, ch), amp in zip(plan.channels, plan.amps_jy, strict=True):
        if c_sb != sb:
            continue
        r = _phasors(np.random.default_rng([seed, RFI_TAG, 1, c_sb, ch]), n_ant)
        out[:, :, ch] += amp * (np.conj(r[ant1]) * r[ant2])[None, :]
    if bursts:
        rng = np.random.default_rng([seed, RFI_TAG, 2, int(round(chunk_start_mjd * 86400.0))])
        amp = float(np.exp(rng.uniform(*np.log(BURST_JY))))
        r = _phasors(rng, n_ant)
        out[bursts] += amp * (np.conj(r[ant1]) * r[ant2])[None, :, None]
    return out
