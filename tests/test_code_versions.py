"""Each asset's code_version changes with the engine code the asset runs, and only with it.

The closure walk is checked on a small planted tree whose expected closure is written out by hand, then on
a copy of the real source tree: an edit to an imaging module restales ``image`` and not the assets upstream
of it, an edit to conversion planning restales ``measurement_set`` and not ``image``.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contimg_assets.code_versions import HASH_HEX_CHARS, code_version_for, engine_closure, hash_files

REPO = Path(__file__).resolve().parents[1]
ASSET_CHILD_JOBS = {
    "subband_group": None,
    "measurement_set": "contimg.convert.job",
    "caltable_set": "contimg.calibrate.job",
    "image": "contimg.image.job",
    "nightly_mosaic": None,
}

PLANTED = {
    "contimg/__init__.py": "",
    "contimg/a.py": "def f():\n    from contimg.b import g  # imported inside a function\n    return g()\n",
    "contimg/b.py": "from .c import h\n\ndef g():\n    return h()\n",
    "contimg/c.py": "from importlib import resources\n\ndef h():\n"
    "    return resources.files('contimg.tables').joinpath('t.csv').read_text()\n",
    "contimg/tables/__init__.py": "",
    "contimg/tables/t.csv": "a,b\n1,2\n",
    "contimg/unrelated.py": "import numpy\n",
    "contimg/sub/__init__.py": "from contimg import unrelated  # runs whenever contimg.sub.x is imported\n",
    "contimg/sub/x.py": "X = 1\n",
    "assets/thing.py": "import os\nimport contimg.a\nfrom contimg_assets import other  # Dagster side: not followed\n",
    "assets/other.py": "import contimg.sub.x\n",
}


@pytest.fixture
def planted(tmp_path):
    for name, text in PLANTED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def closure_names(seeds, root):
    return {p.relative_to(root.resolve()).as_posix() for p in engine_closure(seeds, root)}


def test_closure_follows_function_imports_relative_imports_packages_and_data(planted):
    assert closure_names([planted / "assets/thing.py"], planted) == {
        "assets/thing.py",
        "contimg/__init__.py",
        "contimg/a.py",
        "contimg/b.py",
        "contimg/c.py",
        "contimg/tables/__init__.py",
        "contimg/tables/t.csv",
    }
    # a submodule import runs its package's __init__, and what that imports
    assert closure_names([planted / "assets/other.py"], planted) == {
        "assets/other.py",
        "contimg/__init__.py",
        "contimg/sub/__init__.py",
        "contimg/sub/x.py",
        "contimg/unrelated.py",
    }


def test_hash_changes_with_the_content_of_closure_files_only(planted):
    seeds = [planted / "assets/thing.py"]

    def version():
        return hash_files(engine_closure(seeds, planted), planted)

    first = version()
    assert re.fullmatch(f"[0-9a-f]{{{HASH_HEX_CHARS}}}", first)
    (planted / "contimg/unrelated.py").write_text("import numpy  # edited\n")
    assert version() == first
    (planted / "contimg/tables/t.csv").write_text("a,b\n1,3\n")
    second = version()
    assert second != first
    (planted / "contimg/b.py").write_text(PLANTED["contimg/b.py"] + "# a comment is a change too\n")
    assert version() not in (first, second)


VERSIONS_SCRIPT = """
import json, sys
import contimg
from contimg_assets.code_versions import code_version_for
assert contimg.__file__.startswith(sys.argv[1]), contimg.__file__
jobs = json.loads(sys.argv[2])
print(json.dumps({name: code_version_for("contimg_assets." + name, job) for name, job in jobs.items()}))
"""


def versions_in(tree: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", VERSIONS_SCRIPT, str(tree), json.dumps(ASSET_CHILD_JOBS)],
        capture_output=True,
        text=True,
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def changed(before: dict, after: dict) -> set:
    return {name for name in before if before[name] != after[name]}


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    tree = tmp_path_factory.mktemp("src")
    for package in ("contimg", "contimg_assets"):
        shutil.copytree(REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def append_comment(path: Path) -> None:
    with path.open("a") as fh:
        fh.write("\n# an edit\n")


def test_editing_engine_modules_restales_the_assets_that_run_them(tree_copy):
    base = versions_in(tree_copy)
    # the same files in another folder: the same versions (paths are hashed relative to the tree)
    assert base == {name: code_version_for(f"contimg_assets.{name}", job) for name, job in ASSET_CHILD_JOBS.items()}

    append_comment(tree_copy / "contimg/image/weighting.py")
    after_image_edit = versions_in(tree_copy)
    diff = changed(base, after_image_edit)
    assert "image" in diff and not diff & {"measurement_set", "subband_group"}, diff

    append_comment(tree_copy / "contimg/convert/plan.py")
    after_convert_edit = versions_in(tree_copy)
    diff = changed(after_image_edit, after_convert_edit)
    assert "measurement_set" in diff and not diff & {"image", "caltable_set", "nightly_mosaic"}, diff

    # an asset's own module is in its version; the Dagster side is not followed into other assets
    append_comment(tree_copy / "contimg_assets/measurement_set.py")
    assert changed(after_convert_edit, versions_in(tree_copy)) == {"measurement_set"}


def test_defs_assets_carry_their_code_versions():
    from dagster import AssetKey

    from contimg_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    found = {name: graph.get(AssetKey(name)).code_version for name in ASSET_CHILD_JOBS}
    assert found == {name: code_version_for(f"contimg_assets.{name}", job) for name, job in ASSET_CHILD_JOBS.items()}
    assert all(re.fullmatch(f"[0-9a-f]{{{HASH_HEX_CHARS}}}", v) for v in found.values()), found
    assert len(set(found.values())) == len(found)  # each asset its own closure
