"""The field model's time quadrature (contimg.calibrate.job.model) against the exact bin average, no CASA.

A fringe turning linearly by ``phi`` over a bin averages to sinc(phi / 2 pi) (the textbook time-smearing
factor); the nodes chosen for a turn must reproduce it for every turn up to that one, and a fringe whose
rate itself drifts over the bin (a quadratic phase) is integrated numerically on a fine grid here.
"""

import numpy as np
import pytest

from contimg.calibrate.job.model import QUADRATURE_TOL, bin_quadrature, quadrature_order


@pytest.mark.parametrize("turn", [0.0, 0.3, 2.0, 7.5, 21.0, 60.0])
def test_nodes_average_a_turning_fringe_as_the_bin_does(turn):
    x, w = bin_quadrature(quadrature_order(turn))
    assert np.all(np.abs(x) <= 0.5) and w.sum() == pytest.approx(1.0)
    phi = np.linspace(0.0, turn, 400)
    got = np.exp(1j * phi[:, None] * x[None, :]) @ w
    assert np.max(np.abs(got - np.sinc(phi / (2 * np.pi)))) <= QUADRATURE_TOL


def test_nodes_follow_a_fringe_whose_rate_drifts():
    # a phase of 20 rad over the bin plus a 3 rad curvature: the exact mean from a 200000-point midpoint rule
    n = quadrature_order(23.0)
    x, w = bin_quadrature(n)
    phase = lambda t: 20.0 * t + 12.0 * t**2  # noqa: E731
    t = (np.arange(200_000) + 0.5) / 200_000 - 0.5
    exact = np.mean(np.exp(1j * phase(t)))
    assert abs(np.exp(1j * phase(x)) @ w - exact) <= QUADRATURE_TOL


def test_more_turn_needs_more_nodes_and_bad_turns_are_refused():
    orders = [quadrature_order(t) for t in (0.0, 5.0, 10.0, 20.0, 40.0)]
    assert orders == sorted(orders) and orders[0] >= 2 and orders[-1] > orders[0]
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="turn"):
            quadrature_order(bad)


def test_the_fields_beams_in_one_transform_are_each_sources_drift_averaged_beam():
    from astropy.time import Time

    from contimg.calibrate.job.model import drift_averaged_beams
    from contimg.calibrate.plan import drift_averaged_beam
    from contimg.core.phasing import meridian_icrs

    t0, t1, ptg = 61000.31, 61000.315, 55.5
    centre = meridian_icrs(Time((t0 + t1) / 2, format="mjd", scale="utc"), ptg)  # sources around the beam
    rng = np.random.default_rng(8)
    ra, dec = centre.ra.deg + rng.uniform(-3, 3, 6), ptg + rng.uniform(-2.5, 2.5, 6)
    got = drift_averaged_beams(ra, dec, t0, t1, ptg)
    want = [drift_averaged_beam(r, d, t0, t1, ptg, n=3) for r, d in zip(ra, dec, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.ptp(got) > 0.1  # the sources span the beam: a mix-up of their order would show
