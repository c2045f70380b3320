"""The layers, read from the import statements of every project file (imports inside functions included).

- The engine (``contimg/``) imports no Dagster (``dagster``, ``dagster_*``), except ``dagster_pipes`` in
  ``contimg/childjobs/report.py``, and nothing of the Dagster side (``contimg_assets``, ``contimg_resources``,
  ``sensors``, ``schedules``).
- CASA (``casatools``, ``casatasks``, python-casacore's ``casacore``) is imported only in the child-job
  packages ``contimg/<stage>/job/``: each carries its own casacore, and they must not meet in one process.
  Tests and benchmarks drive CASA directly and are outside this rule.
- No private Dagster (``dagster._...``, ``dagster_shared``) outside the tests, except the run launcher's
  health-check types in ``contimg_resources/run_launcher.py`` (no public name exists for them).

Imports by string (``importlib.import_module(name)``) are not seen.
"""

import ast
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_DIRS = ("contimg", "contimg_assets", "contimg_resources", "sensors", "schedules", "benchmarks", "tests")
DAGSTER_SIDE = {"contimg_assets", "contimg_resources", "sensors", "schedules"}
CASA = {"casatools", "casatasks", "casacore"}
OUTSIDE_CASA_RULE = ("tests", "benchmarks")
PIPES_MODULE = "contimg/childjobs/report.py"
PRIVATE_DAGSTER_MODULE = "contimg_resources/run_launcher.py"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every module imported anywhere in ``path``, one per statement.

    ``from pkg import _name`` also yields ``pkg._name``: a private submodule reached through its package."""
    out = []
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:  # relative imports stay in their package
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if alias.name[0] == "_"]
    return out


def is_dagster(top: str) -> bool:
    return top == "dagster" or top.startswith("dagster_")


def is_private_dagster(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "dagster_shared":
        return True
    return parts[0] == "dagster" and any(p.startswith("_") and not p.endswith("__") for p in parts[1:])


def is_child_job(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) >= 4 and parts[0] == "contimg" and parts[2] == "job"


def layer_violations(root: Path) -> list[str]:
    """Every import in the project tree at ``root`` that breaks a layer rule, as ``path:line: what``."""
    found = []
    for top_dir in PROJECT_DIRS:
        for path in sorted((root / top_dir).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel:
                continue
            for line, name in imports(path):
                top = name.split(".")[0]
                where = f"{rel}:{line}: {name}"
                if top_dir == "contimg":
                    if is_dagster(top) and not (top == "dagster_pipes" and rel == PIPES_MODULE):
                        found.append(f"{where}: the engine imports Dagster")
                    if top in DAGSTER_SIDE:
                        found.append(f"{where}: the engine imports the Dagster side")
                if top in CASA and top_dir not in OUTSIDE_CASA_RULE and not is_child_job(rel):
                    found.append(f"{where}: CASA outside a child job")
                if is_private_dagster(name) and top_dir != "tests" and rel != PRIVATE_DAGSTER_MODULE:
                    found.append(f"{where}: private Dagster API")
    return sorted(set(found))


def test_the_project_keeps_its_layers():
    assert layer_violations(REPO) == []


def test_the_rules_see_everything_real_here():
    """The rules are not vacuous on this tree: the allowed exceptions exist and are found as imports."""
    assert any(n == "dagster_pipes" for _, n in imports(REPO / PIPES_MODULE))
    assert any(is_private_dagster(n) for _, n in imports(REPO / PRIVATE_DAGSTER_MODULE))
    for job in ("convert", "calibrate", "image"):
        job_imports = [n for f in sorted((REPO / "contimg" / job / "job").glob("*.py")) for _, n in imports(f)]
        assert any(n.split(".")[0] in CASA for n in job_imports), job


PLANTED = {
    # path, appended text, expected violation (line is the file's last)
    "contimg/image/weighting.py": ("def _late():\n    import dagster\n", "dagster: the engine imports Dagster"),
    "contimg/core/constants.py": (
        "from dagster_pipes import open_dagster_pipes\n",
        "dagster_pipes: the engine imports Dagster",
    ),
    "schedules/__init__.py": ("from dagster import _core\n", "dagster._core: private Dagster API"),
    "contimg/catalogue/queries.py": (
        "def _f():\n    from contimg_resources import CasaRunner\n",
        "contimg_resources: the engine imports the Dagster side",
    ),
    "contimg/image/qa.py": ("def _g():\n    from casatasks import tclean\n", "casatasks: CASA outside a child job"),
    "contimg_assets/image.py": (
        "from dagster._core.events import DagsterEvent\n",
        "dagster._core.events: private Dagster API",
    ),
}


@pytest.fixture
def tree(tmp_path):
    for top_dir in PROJECT_DIRS:
        shutil.copytree(REPO / top_dir, tmp_path / top_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def test_a_planted_violation_fails_the_check(tree):
    assert layer_violations(tree) == []
    for rel, (text, what) in PLANTED.items():
        path = tree / rel
        path.write_text(path.read_text().rstrip("\n") + "\n\n\n" + text)
        line = len(path.read_text().splitlines())
        assert f"{rel}:{line}: {what}" in layer_violations(tree), rel
    assert len(layer_violations(tree)) == len(PLANTED)  # each planted import found once


def test_allowed_places_stay_allowed_only_there(tree):
    # the run launcher may import private Dagster; the same import elsewhere on the Dagster side may not
    (tree / "contimg_resources/other.py").write_text("from dagster._core.launcher import WorkerStatus\n")
    assert layer_violations(tree) == ["contimg_resources/other.py:1: dagster._core.launcher: private Dagster API"]
    (tree / "contimg_resources/other.py").unlink()
    # CASA in a child job and in a benchmark is fine; in the Dagster side it is not
    (tree / "contimg/convert/job/extra.py").write_text("import casacore.tables\n")
    (tree / "benchmarks/extra.py").write_text("import casatools\n")
    (tree / "sensors/extra.py").write_text("import casatools\n")
    assert layer_violations(tree) == ["sensors/extra.py:1: casatools: CASA outside a child job"]
