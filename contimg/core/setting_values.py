"""The value parsers behind :mod:`contimg.core.config`: each turns a setting's text into a typed value.

A parser takes the stripped text and returns the value, or raises ``ValueError`` saying what is wrong;
:func:`contimg.core.config.read` wraps that in a ``SettingsError`` naming the variable and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# Subbands of a DSA-110 chunk: 16 spectral windows (contimg.core.instrument); a chunk needs at least one.
N_SUBBANDS = 16
# Partition windows are 5 minutes long; the partition start must be one of their edges.
WINDOW_MINUTES = 5
PARTITION_FMT = "%Y-%m-%dT%H:%M"
CHUNK_S = 300.0  # a chunk's nominal length: two stamps this far apart are different chunks
# a bearer token this short is guessable by a loop over loopback; 16 characters of a random token are not
MIN_TOKEN_CHARS = 16
# the web service's answer cache may lag a writing pipeline at most this long (contimg.web.cache)
MAX_WEB_CACHE_S = 30.0
TRUE_WORDS = ("1", "true")
FALSE_WORDS = ("0", "false")


def number(text: str, *, integer: bool) -> float | int:
    """A whole number (``integer``) or a finite decimal number."""
    if integer:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError("not a whole number")
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def ranged(
    *,
    integer: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float | int]:
    """A parser of numbers within ``[lo, hi]`` (open ends where ``lo_open``/``hi_open``), whole if ``integer``."""

    def parse(text: str):
        value = number(text, integer=integer)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise ValueError(f"must be {'>' if lo_open else '>='} {lo:g}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise ValueError(f"must be {'<' if hi_open else '<='} {hi:g}")
        return value

    return parse


def parse_flag(text: str) -> bool:
    """``1``/``true`` -> True, ``0``/``false`` -> False (any case); anything else raises ValueError."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("not a yes/no value")


def partition_start(text: str) -> str:
    """A UTC minute ``YYYY-MM-DDTHH:MM`` on the 5-minute grid."""
    try:
        start = datetime.strptime(text, PARTITION_FMT)
    except ValueError:
        raise ValueError("not a UTC minute YYYY-MM-DDTHH:MM") from None
    if start.minute % WINDOW_MINUTES:
        raise ValueError(f"minute {start.minute:02d} is not on the {WINDOW_MINUTES}-minute grid")
    return start.strftime(PARTITION_FMT)


def json_object(text: str) -> dict:
    """A JSON object (a mapping), parsed."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")  # noqa: TRY004 (a value, reported as such)
    return value


def imaging_config(text: str):
    """An :class:`~contimg.image.rules.ImagingConfig` from a JSON object of its fields, each checked."""
    from contimg.core.config import SettingsError  # here: config imports this module
    from contimg.image.rules import ImagingConfig

    try:
        return ImagingConfig.from_mapping(json_object(text))
    except SettingsError as err:  # the fields' own problems, under this variable's name
        raise ValueError(err.problem or str(err)) from None


@dataclass(frozen=True)
class CasaTimeouts:
    """``CONTIMG_CASA_TIMEOUT_S``: seconds for every child job (``all_s``) and per job (``per_job_s``)."""

    all_s: float | None = None
    per_job_s: Mapping[str, float] = field(default_factory=dict)

    def for_job(self, job: str, default_s: float) -> float:
        """The timeout of ``job``: its own, else the one for every job, else ``default_s``."""
        if job in self.per_job_s:
            return self.per_job_s[job]
        return self.all_s if self.all_s is not None else default_s


def casa_timeouts(text: str) -> CasaTimeouts:
    """``N`` seconds for every job, or ``job=N,...[,N]`` per job with an optional default."""
    all_s, per_job = None, {}
    positive = ranged(lo=0.0, lo_open=True)
    for item in (s.strip() for s in text.split(",")):
        if not item:
            raise ValueError("an empty item")
        name, sep, value = item.rpartition("=")
        name = name.strip()
        try:
            seconds = positive(value.strip())
        except ValueError as err:
            raise ValueError(f"item {item!r}: {err}") from None
        if not sep:
            if all_s is not None:
                raise ValueError(f"item {item!r}: a second timeout for every job")
            all_s = seconds
        elif not name.isidentifier():
            raise ValueError(f"item {item!r}: {name!r} is not a job name")
        elif name in per_job:
            raise ValueError(f"item {item!r}: a second timeout for {name}")
        else:
            per_job[name] = seconds
    return CasaTimeouts(all_s, per_job)


def hang_drills(text: str) -> tuple:
    """Fault-drill hangs ``JOB:MATCH[@ATTEMPTS]``, comma-separated (:mod:`contimg.childjobs.drills`)."""
    from contimg.childjobs.drills import parse_hang_drills

    return tuple(parse_hang_drills(text))


def directory_path(text: str) -> Path:
    """An absolute directory path (made when needed; an existing non-directory is refused)."""
    if "\0" in text:
        raise ValueError("a NUL character in the path")
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    return path


def existing_file(text: str) -> Path:
    """The absolute path of an existing file."""
    path = Path(text).expanduser().absolute()
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    return path


def http_url(text: str) -> str:
    """An http(s) URL, without a trailing slash."""
    if not text.startswith(("http://", "https://")) or len(text.split("//", 1)[1]) == 0:
        raise ValueError("is not an http(s) URL")
    return text.rstrip("/")


def secret(text: str) -> str:
    """A token long enough not to be guessed by a loop over loopback."""
    if len(text) < MIN_TOKEN_CHARS:
        raise ValueError(f"is shorter than {MIN_TOKEN_CHARS} characters")
    return text
