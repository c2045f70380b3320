"""``contimg serve``: the read-only monitoring API and the morning QA pages over the products catalogue.

``app`` builds the FastAPI application (:func:`create_app`), ``reader`` opens the catalogue read-only,
``api`` has the JSON routes, ``pages`` and ``html`` the pages for people, ``plots`` the server-side figures
and FITS headers, ``files`` serves product files from the products tree only.
"""

from contimg.web.app import WebSettings, create_app

__all__ = ["WebSettings", "create_app"]
