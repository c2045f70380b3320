"""Where the reference catalogue puts a source, clean may go deeper than its mask elsewhere (issue #22).

WSClean's auto-mask cleans the whole image only down to ``auto_mask_sigma`` (5), then goes deeper only
where it has already put components. The many sources below that leave their sidelobes in the residual,
and on a sparse array they add up: the 32-antenna test chunk of the counts sky held ~40 islands of 5-6.5
sigma at no source (a median 3.1 sigma of uncleaned sidelobes plus noise, docs/benchmarks.md). A lower
mask everywhere takes them but lets clean chase noise (at 3 sigma: 94.7 % of sources good, median flux
0.975). A source the reference catalogue knows is not noise: there, and only there, the masked phase may
go down to ``known_source_sigma`` (3).

WSClean takes this as a local-rms image (``-local-rms-image``): in its masked phase it looks for peaks in
the residual times (lowest rms / rms) and cleans to (lowest rms) x auto_mask_sigma, so an rms image of
sigma everywhere and sigma x known/auto at the known sources' pixels cleans them to ``known_source_sigma``
and the rest of the image to ``auto_mask_sigma``, as before. The deeper phase that follows cleans inside
the components found, as before.

Pure numpy and astropy: ``known_in_field`` picks the sources, ``local_rms_image`` draws the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contimg.image.subtract import beam_offsets_rad, direction_cosines, seen_through_beam

__all__ = ["KnownSources", "known_in_field", "local_rms_image", "pixel_of"]

# A catalogue source fainter than this (apparent, in units of the image's noise) is left out: at a 3-sigma
# clean threshold it would take 1.5 sigma of noise on it to be cleaned at all, and each known source's
# pixels are where clean may chase that noise.
MIN_APPARENT_SIGMA = 2.0
N_MEAN_SAMPLES = 6  # times and frequencies the apparent flux is averaged over (midpoints of equal parts)


@dataclass(frozen=True)
class KnownSources:
    """Catalogue sources inside the image, as (S,) arrays.

    Direction cosines from the phase centre (l east, m north), apparent flux (Jy, the mean through the beam over
    the chunk and band) and Gaussian FWHM (arcsec; 0: a point).
    """

    l: np.ndarray  # noqa: E741 - the direction cosine's name
    m: np.ndarray
    apparent_jy: np.ndarray
    maj_arcsec: np.ndarray

    def __len__(self) -> int:
        """The number of sources."""
        return len(self.l)


def known_in_field(
    catalog,
    centre_ra_deg: float,
    centre_dec_deg: float,
    pointing_dec_deg: float,
    times_mjd,
    freqs_hz,
    half_side_deg: float,
    min_apparent_jy: float,
) -> KnownSources:
    """The sources of ``catalog`` inside the image whose apparent flux reaches ``min_apparent_jy``.

    The apparent flux is the catalogue's (extrapolated with its spectral index) times the Airy beam's
    power at the source, averaged over ``times_mjd`` and ``freqs_hz`` (the beam centred on the meridian
    at ``pointing_dec_deg``). Inside: max(|l|, |m|) < sin(``half_side_deg``) of the image centre.
    """
    lmn = direction_cosines(catalog.ra_deg, catalog.dec_deg, centre_ra_deg, centre_dec_deg)
    inside = (lmn[:, 2] > -1.0) & (np.maximum(np.abs(lmn[:, 0]), np.abs(lmn[:, 1])) < np.sin(np.radians(half_side_deg)))
    idx = np.flatnonzero(inside)
    ra, dec = np.asarray(catalog.ra_deg, float)[idx], np.asarray(catalog.dec_deg, float)[idx]
    theta = beam_offsets_rad(ra, dec, times_mjd, pointing_dec_deg)  # (T, S)
    apparent = np.mean(seen_through_beam(catalog, idx, theta, freqs_hz), axis=(0, 1))
    keep = apparent >= min_apparent_jy
    chosen = idx[keep]
    return KnownSources(
        l=lmn[chosen, 0],
        m=lmn[chosen, 1],
        apparent_jy=apparent[keep],
        maj_arcsec=np.asarray(catalog.maj_arcsec, float)[chosen],
    )


def pixel_of(l, m, size: int, cell_arcsec: float) -> tuple[np.ndarray, np.ndarray]:  # noqa: E741
    """(x, y): the 0-based pixel of direction cosines (l east, m north) on WSClean's ``size`` x ``size`` grid.

    WSClean's images have the phase centre at pixel (size / 2, size / 2) (FITS CRPIX size / 2 + 1), RA
    increasing to the left (CDELT1 < 0) and a SIN projection, in which a pixel's offset is the direction
    cosine over the cell.
    """
    cell = np.radians(cell_arcsec / 3600.0)
    return size // 2 - np.asarray(l, float) / cell, size // 2 + np.asarray(m, float) / cell


def local_rms_image(
    known: KnownSources, size: int, cell_arcsec: float, noise_jy: float, factor: float, radius_arcsec: float
) -> np.ndarray:
    """(size, size) float32, FITS order (y, x): ``noise_jy`` everywhere, ``noise_jy * factor`` near known sources.

    Near: within ``radius_arcsec`` of a source's position, or half its Gaussian FWHM if that is larger
    (the catalogue's position error and the clean's pixel fall inside the main lobe).
    """
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    if noise_jy <= 0:
        raise ValueError(f"noise_jy must be positive, got {noise_jy}")
    rms = np.full((size, size), noise_jy, np.float32)
    x, y = pixel_of(known.l, known.m, size, cell_arcsec)
    radius_px = np.maximum(radius_arcsec, 0.5 * np.asarray(known.maj_arcsec, float)) / cell_arcsec
    reach = int(np.ceil(np.max(radius_px, initial=0.0)))
    offsets = np.arange(-reach, reach + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    for xc, yc, r in zip(x, y, radius_px, strict=True):
        px, py = np.rint(xc).astype(int) + dx, np.rint(yc).astype(int) + dy
        near = ((px - xc) ** 2 + (py - yc) ** 2 <= r * r) & (px >= 0) & (px < size) & (py >= 0) & (py < size)
        rms[py[near], px[near]] = noise_jy * factor
    return rms
