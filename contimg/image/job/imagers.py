"""The two imagers: WSClean (the fast default, as a subprocess) and CASA's tclean (the reference).

Each makes ``{prefix}-image.fits`` and ``{prefix}-residual.fits`` of one MS on a given grid and
returns where they are: ``{"image", "residual", "casa_image"}`` (paths; ``casa_image`` is tclean's
CASA image, else None), and for WSClean its CPU seconds (``cpu_s``).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from contimg.image.job.errors import CleanOverBudget, ImagingError

__all__ = ["run_wsclean", "run_tclean"]

LOG_TAIL_CHARS = 1500  # of WSClean's log in the error: its last lines say why


def run_wsclean(
    ms_path: str,
    prefix: Path,
    size: int,
    cell: float,
    cfg,
    column: str,
    threshold_jy: float,
    tmpdir: Path,
    initial=None,
    beam=None,
    budget_s: float | None = None,
    local_rms: Path | None = None,
) -> dict:
    """WSClean's quick image of ``ms_path`` (``size`` px of ``cell`` arcsec; ``cfg`` an ImagingConfig).

    It starts from ``initial`` (contimg.image.gridding.InitialImages, one per output channel, of this MS
    on this grid) when given for every output channel, else makes its own PSF and dirty images.
    ``beam`` (major arcsec, minor arcsec, position angle deg) is the restoring beam; None: WSClean
    fits its PSF. ``budget_s``: WSClean is stopped after this many seconds (None: never). ``local_rms``: a FITS
    image of the noise WSClean's masked phase reads instead of its residual's (contimg.image.known_sources).

    Raises
    ------
    CleanOverBudget
        When WSClean ran out of ``budget_s`` and was stopped.
    ImagingError
        When WSClean exits with an error: the message holds the end of its log.
    """
    # WSClean cleans to the larger of the absolute threshold (threshold_sigma x the radiometer noise,
    # as tclean gets) and threshold_sigma x the rms of the current residual (-auto-threshold): the
    # radiometer is the floor, the residual's own noise (1.2x the radiometer at full size) the
    # usual stop; cleaning to the floor instead took 2-3 s more for the same image. (In a first major
    # cycle the residual's rms is the dirty image's sidelobes: see ImagingConfig.mgain.)
    argv = [
        "wsclean",
        "-name",
        str(prefix),
        "-size",
        str(size),
        str(size),
        "-scale",
        f"{cell:.4f}asec",
        "-pol",
        "I",
        "-niter",
        str(cfg.niter),
        "-mgain",
        str(cfg.mgain),
        "-threshold",
        f"{threshold_jy:.6g}",
        "-auto-threshold",
        str(cfg.threshold_sigma),
        "-data-column",
        column,
        "-reorder",
        "-use-wgridder",
        "-j",
        str(cfg.threads),
        "-temp-dir",
        str(tmpdir),
        "-wgridder-accuracy",
        f"{cfg.wgridder_accuracy:g}",
        "-nmiter",
        str(cfg.nmiter),
        "-no-update-model-required",
        "-no-dirty",
        "-quiet",
    ]
    if cfg.auto_mask_sigma > 0:
        argv += ["-auto-mask", str(cfg.auto_mask_sigma)]
        if local_rms is not None:
            argv += ["-local-rms-image", str(local_rms)]
    if cfg.channels_out > 1:
        # clean the output channels jointly and fit their spectra: the multi-frequency image is then
        # PREFIX-MFS-*.fits
        argv += ["-channels-out", str(cfg.channels_out), "-join-channels"]
        if cfg.spectral_terms > 1:
            argv += ["-fit-spectral-pol", str(cfg.spectral_terms)]
    argv += ["-weight", "briggs", str(cfg.robust)] if cfg.weighting == "briggs" else ["-weight", "natural"]
    if beam is not None:
        argv += ["-beam-shape", f"{beam[0]:.3f}asec", f"{beam[1]:.3f}asec", f"{beam[2]:.3f}deg"]
    if initial is not None and len(initial) == cfg.channels_out:
        _write_for_reuse(prefix, initial)
        argv += ["-reuse-psf", str(prefix), "-reuse-dirty", str(prefix)]
    log = tmpdir / "wsclean.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv + [ms_path], stdout=out, stderr=subprocess.STDOUT)
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            proc.kill()

        stopper = threading.Timer(budget_s, stop) if budget_s else None
        if stopper is not None:
            stopper.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # wait4: WSClean's own CPU time, none of another child's
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stopped.is_set() and proc.returncode != 0:
        over = CleanOverBudget(f"WSClean stopped at its budget of {budget_s:g} s (clean_budget_s)")
        over.cpu_s = usage.ru_utime + usage.ru_stime
        raise over
    if proc.returncode != 0:
        raise ImagingError(f"wsclean failed ({proc.returncode}): {log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}")
    stem = f"{prefix}-MFS" if cfg.channels_out > 1 else str(prefix)
    image = Path(f"{stem}-image.fits")
    residual = Path(f"{stem}-residual.fits")  # absent when niter is 0: the image is then the residual
    return {
        "image": image,
        "residual": residual if residual.exists() else image,
        "casa_image": None,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _write_for_reuse(prefix: Path, images) -> None:
    """Write ``images`` (InitialImages, one per output channel) as the PSF and dirty FITS files WSClean can reuse.

    The files are ``{prefix}-psf.fits`` and ``{prefix}-dirty.fits`` for one channel, and
    ``{prefix}-000k-psf.fits`` / ``-dirty.fits`` for output channel k of several (WSClean's own names),
    which WSClean loads with -reuse-psf / -reuse-dirty ``prefix`` (scratch files: no WCS; WSClean writes
    its products' headers itself and makes the multi-frequency images from the channels'). ``images``
    is a sequence of contimg.image.gridding.InitialImages.
    """
    from astropy.io import fits

    from contimg.image.gridding import wsclean_keywords

    for k, channel in enumerate(images):
        stem = f"{prefix}-{k:04d}" if len(images) > 1 else str(prefix)
        for kind, plane in (("psf", channel.psf), ("dirty", channel.dirty)):
            hdu = fits.PrimaryHDU(plane[None, None])
            hdu.header.update(wsclean_keywords(channel))
            hdu.writeto(f"{stem}-{kind}.fits", overwrite=True)


def run_tclean(
    ms_path: str, prefix: Path, size: int, cell: float, cfg, column: str, threshold_jy: float, beam=None
) -> dict:
    """CASA tclean's image of ``ms_path`` (w-projection, Hogbom), exported to FITS.

    ``beam`` (major arcsec, minor arcsec, position angle deg) is the restoring beam; None: tclean fits its PSF.

    Raises
    ------
    ImagingError
        When tclean makes no image.
    """
    import casatasks

    casatasks.tclean(
        vis=ms_path,
        imagename=str(prefix),
        imsize=[size, size],
        cell=f"{cell:.4f}arcsec",
        stokes="I",
        specmode="mfs",
        gridder="wproject",
        wprojplanes=-1,
        deconvolver="hogbom",
        weighting="briggs" if cfg.weighting == "briggs" else "natural",
        robust=cfg.robust,
        niter=cfg.niter,
        gain=0.1,
        threshold=f"{threshold_jy}Jy",
        pblimit=-1,
        restoringbeam=[f"{beam[0]:.3f}arcsec", f"{beam[1]:.3f}arcsec", f"{beam[2]:.3f}deg"] if beam else [],
        datacolumn="corrected" if column == "CORRECTED_DATA" else "data",
    )
    image = Path(f"{prefix}.image")
    if not image.exists():
        raise ImagingError("tclean produced no image")
    casatasks.exportfits(imagename=str(image), fitsimage=f"{prefix}-image.fits", overwrite=True)
    casatasks.exportfits(imagename=f"{prefix}.residual", fitsimage=f"{prefix}-residual.fits", overwrite=True)
    return {"image": Path(f"{prefix}-image.fits"), "residual": Path(f"{prefix}-residual.fits"), "casa_image": image}
