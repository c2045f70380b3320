"""Regridding of an input's planes onto the strip, bilinear or by cubic spline (pure: astropy, scipy, reproject)."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

__all__ = ["regrid", "MAP_NODE_PX"]

MAP_NODE_PX = 32  # output pixels between exactly transformed nodes of the regridding map (see regrid)


def _coarse_to_fine(n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Coarse node positions over 0..n-1 and the (n, n_nodes) linear-interpolation matrix onto every pixel."""
    nodes = np.unique(np.r_[np.arange(0, n, step), n - 1]).astype(float)
    eye = np.eye(nodes.size)
    mat = np.stack([np.interp(np.arange(n), nodes, eye[j]) for j in range(nodes.size)], axis=1)
    return nodes, mat


def regrid(
    planes: np.ndarray, in_wcs: WCS, out_wcs: WCS, shape_out: tuple, *, exact: bool = False, order=1
) -> np.ndarray:
    """Regridding of ``planes`` (n, ny, nx) onto ``out_wcs`` / ``shape_out``; 0 outside the input.

    ``order``, for every plane or one per plane: 1 bilinear, for smooth planes (the primary beam, the
    weights); 3 a cubic spline through the samples, for a restored image: bilinear interpolation between
    samples 2.4-3 px apart across the beam's minor axis lowers a point source's fitted peak by 3-5 %, the
    spline by ~0.1 % (docs/benchmarks.md). The pixel map is worked out once for all the planes.

    With ``exact`` (or when the coarse map is not finite) this is ``reproject.reproject_interp``.
    Otherwise the output-to-input pixel map is computed with astropy on nodes every
    ``MAP_NODE_PX`` output pixels and interpolated linearly in between (the SIN -> CAR map is smooth:
    over 32 px of 4 arcsec its second-order term is ~1e-3 px), then ``scipy.ndimage.map_coordinates``
    samples the planes: ~10x faster than ``reproject_interp``, whose full per-pixel transforms with
    round-trip checks take ~16 s for a 4096^2 input onto 3000^2 px.

    Returns
    -------
    numpy.ndarray
        float32 (n, *shape_out).
    """
    from astropy.wcs.utils import pixel_to_pixel
    from scipy.ndimage import map_coordinates

    orders = (order,) * planes.shape[0] if np.ndim(order) == 0 else tuple(order)
    if len(orders) != planes.shape[0] or not set(orders) <= {1, 3}:
        raise ValueError(f"order must be 1 (bilinear) or 3 (cubic spline), one or one per plane: got {order!r}")

    if not exact:
        ny, nx = shape_out
        ny_nodes, ly = _coarse_to_fine(ny, MAP_NODE_PX)
        nx_nodes, lx = _coarse_to_fine(nx, MAP_NODE_PX)
        gx, gy = np.meshgrid(nx_nodes, ny_nodes)
        cx, cy = pixel_to_pixel(out_wcs, in_wcs, gx, gy)
        if np.all(np.isfinite(cx)) and np.all(np.isfinite(cy)):
            fx = (ly @ cx @ lx.T).astype(np.float32)
            fy = (ly @ cy @ lx.T).astype(np.float32)
            out = np.empty((planes.shape[0], ny, nx), dtype=np.float32)
            for k, o in enumerate(orders):
                map_coordinates(  # a spline needs its coefficients first (prefilter)
                    planes[k], (fy, fx), output=out[k], order=o, mode="constant", cval=0.0, prefilter=o > 1
                )
            return out
    from reproject import reproject_interp

    out = np.empty((planes.shape[0],) + tuple(shape_out), dtype=np.float32)
    for o in sorted(set(orders)):
        these = [k for k, ok in enumerate(orders) if ok == o]
        arr, _ = reproject_interp(
            (planes[these], in_wcs),
            out_wcs,
            shape_out=(len(these),) + tuple(shape_out),
            order={1: "bilinear", 3: "bicubic"}[o],
        )
        out[these] = np.nan_to_num(arr, nan=0.0)
    return out
