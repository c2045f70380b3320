"""Each asset's ``code_version``: a hash of the engine source the asset runs.

Dagster marks an asset's partitions stale when its ``code_version`` changes, so the version must change
when, and only when, code that shapes the asset's products changes. It is the sha256 (first 12 hex) of
the files in the *static import closure* of the asset's module and of the child-job package it launches
(``python -m contimg.<stage>.job``): every ``import``/``from`` statement, including those inside
functions, followed through the ``contimg`` package (the engine; Dagster glue in ``contimg_assets`` and
``contimg_resources`` is not followed, so editing one asset's module does not restale the others), plus
each package's ``__init__.py`` on the way (importing a module runs them) and the package data named by
``importlib.resources.files("contimg....")`` (antenna positions, calibrator list, catalogue schema).

Not covered: code reached by a string (``importlib.import_module(name)``), and external programs and
libraries (CASA, WSClean, pyuvdata releases). The package version (``contimg.__version__``) is not part
of the hash, so a commit that leaves an asset's closure alone leaves its partitions fresh.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

import contimg

__all__ = ["ENGINE_PACKAGE", "HASH_HEX_CHARS", "code_version_for", "engine_closure", "hash_files"]

ENGINE_PACKAGE = "contimg"
HASH_HEX_CHARS = 12  # 48 bits: collisions between two versions of one asset are not a concern
RESOURCE_FUNCTIONS = {"files"}  # importlib.resources.files("contimg.x"): the package's data files


def _in_engine(name: str) -> bool:
    return name == ENGINE_PACKAGE or name.startswith(ENGINE_PACKAGE + ".")


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of engine module ``name`` under ``root`` (no import), or None if there is none."""
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imported_names(path: Path, module: str) -> tuple[set[str], set[str]]:
    """(modules imported anywhere in ``path``, packages whose data it reads), as absolute dotted names."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    modules, data = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules.update(_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            modules.update(_parents(base))
            # `from pkg import name`: name may be a submodule (checked against the tree by the caller)
            modules.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in RESOURCE_FUNCTIONS:
                data.add(node.args[0].value)
    return modules, data


def engine_closure(seeds: list[Path], root: Path) -> list[Path]:
    """Files of the engine that ``seeds`` (source files) import, directly or not, plus the data they read.

    Parameters
    ----------
    seeds : list of Path
        Source files to start from; they are part of the result. Files outside ``root`` (an asset
        module in another tree) are read but named only by their own path.
    root : Path
        The folder holding the ``contimg`` package.

    Returns
    -------
    list of Path
        Sorted, without duplicates: seeds, engine modules and packages reached, package data files.

    Raises
    ------
    SyntaxError
        If a file in the closure does not parse (its name is in the message).
    """
    root = root.resolve()
    done: set[Path] = set()
    data_files: set[Path] = set()
    todo = [Path(s).resolve() for s in seeds]
    while todo:
        path = todo.pop()
        if path in done:
            continue
        done.add(path)
        try:
            module = _module_name(path, root)
        except ValueError:
            module = path.stem  # a seed outside the tree: only its absolute imports matter
        names, data = _imported_names(path, module)
        if path.is_relative_to(root):
            names.update(_parents(module))  # importing a module runs its packages' __init__
        for name in names:
            if _in_engine(name) and (f := _module_file(name, root)) is not None and f.resolve() not in done:
                todo.append(f.resolve())
        for package in filter(_in_engine, data):
            folder = root.joinpath(*package.split("."))
            if folder.is_dir():
                data_files.update(
                    p.resolve()
                    for p in folder.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                )
    return sorted(done | data_files)


def hash_files(files: list[Path], root: Path) -> str:
    """sha256 (first :data:`HASH_HEX_CHARS` hex) of the files' contents and their paths relative to ``root``."""
    digest = hashlib.sha256()
    root = root.resolve()
    for f in sorted(files):
        name = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.name
        digest.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_HEX_CHARS]


@functools.cache
def code_version_for(asset_module: str, child_job: str | None = None) -> str:
    """``code_version`` of the asset defined in ``asset_module`` that launches ``child_job`` (or nothing).

    Parameters
    ----------
    asset_module : str
        Dotted name of the asset's module (``contimg_assets.image``); pass ``__name__``.
    child_job : str or None
        Dotted name of the child-job package it runs (``contimg.image.job``); all its modules are seeds.

    Raises
    ------
    ValueError
        If either module cannot be found.
    """
    engine_root = Path(contimg.__file__).resolve().parent.parent
    spec = importlib.util.find_spec(asset_module)
    if spec is None or not spec.origin:
        raise ValueError(f"asset module {asset_module!r} not found")
    seeds = [Path(spec.origin)]
    if child_job is not None:
        job = _module_file(child_job, engine_root)
        if job is None or job.name != "__init__.py":
            raise ValueError(f"child job {child_job!r} is not a package under {engine_root}")
        seeds += sorted(job.parent.glob("*.py"))
    return hash_files(engine_closure(seeds, engine_root), engine_root)
