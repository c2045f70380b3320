"""Product files over HTTP: only from the products tree, only PNG, FITS and JSON.

A requested path is resolved (symbolic links and ``..`` followed) and must land inside
``layout.products``; anything else -- traversal, absolute paths, other suffixes, directories such as a
Measurement Set, missing files -- is a 404 that says nothing about what exists outside.
"""

from __future__ import annotations

from pathlib import Path

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
    except (OSError, ValueError):   # e.g. an embedded NUL byte
        return None
    if not path.is_relative_to(root) or path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
        return None
    return path


def file_url(products: Path, path: str | None) -> str | None:
    """The ``/files/...`` URL of a product path recorded in the catalogue (None if it is outside the tree)."""
    if not path:
        return None
    try:
        rel = Path(path).resolve().relative_to(Path(products).resolve())
    except ValueError:
        return None
    return "/files/" + rel.as_posix()


@router.get("/files/{relative:path}", tags=["files"], summary="A product file (PNG, FITS, JSON) from the products tree")
def get_file(relative: str, request: Request) -> FileResponse:
    path = resolve_product(request.app.state.settings.layout.products, relative)
    if path is None:
        raise HTTPException(status_code=404, detail="no such product file")
    return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix.lower()])
