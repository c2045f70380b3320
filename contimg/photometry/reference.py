"""Photometry's rule on the reference catalogue (read by :func:`contimg.core.refcat.read_reference_catalog`)."""

from __future__ import annotations

from contimg.core.refcat import ReferenceCatalog

__all__ = ["compact_ids"]


def compact_ids(catalog: ReferenceCatalog) -> set[str] | None:
    """The names of the sources that may set the daily flux scale.

    Parameters
    ----------
    catalog : ReferenceCatalog
        The reference catalogue.

    Returns
    -------
    set of str or None
        The sources its ``compact`` column marks compact, or None when it has no such column (then every
        source may be a reference).
    """
    if catalog.compact is None:
        return None
    return {str(i) for i, c in zip(catalog.source_id, catalog.compact, strict=True) if c}
