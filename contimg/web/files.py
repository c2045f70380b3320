"""Product files over HTTP: only from the products tree, only PNG, FITS and JSON.

A requested path is resolved (symbolic links and ``..`` followed) and must land inside
``layout.products``; anything else -- traversal, absolute paths, other suffixes, directories such as a
Measurement Set, missing files -- is a 404 that says nothing about what exists outside.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

__all__ = ["router", "SERVED_SUFFIXES", "resolve_product", "file_url"]

SERVED_SUFFIXES = {".png": "image/png", ".fits": "application/fits", ".json": "application/json"}

router = APIRouter()


def resolve_product(products: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``products``, or None unless it is a served file inside that tree."""
    root = Path(products).resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return None
    if not path.is_relative_to(root) or path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
        return None
    return path


@lru_cache(maxsize=16)
def _roots(products: str) -> tuple[str, ...]:
    """The products folder as given and with symbolic links resolved (catalogue paths may use either)."""
    return tuple(dict.fromkeys((os.path.normpath(os.path.abspath(products)), os.path.realpath(products))))


def file_url(products: Path, path: str | None) -> str | None:
    """The ``/files/...`` URL of a product path recorded in the catalogue (None if it is outside the tree).

    Only builds a link (string work, no file-system calls: a night page has hundreds); the request for it is
    checked by :func:`resolve_product`.
    """
    if not path:
        return None
    norm = os.path.normpath(str(path))
    for root in _roots(str(products)):
        if norm.startswith(root + os.sep):
            return "/files/" + quote(norm[len(root) + 1 :], safe="/")
    return None


@router.get("/files/{relative:path}", tags=["files"], summary="A product file (PNG, FITS, JSON) from the products tree")
def get_file(relative: str, request: Request) -> FileResponse:
    path = resolve_product(request.app.state.settings.layout.products, relative)
    if path is None:
        raise HTTPException(status_code=404, detail="no such product file")
    return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix.lower()])
