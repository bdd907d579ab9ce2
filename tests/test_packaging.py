"""Packaging: the version written once, every imported package declared, the files a wheel must carry,
the citation metadata, and a library that leaves its host process alone."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pix2pix

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pix2pix"
TYPE_CHECKER_ONLY = {"_typeshed"}  # typeshed's own module: imported under TYPE_CHECKING, never installed


def read_pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()  # PEP 503


def declared_distributions() -> set[str]:
    """Every distribution named in the dependencies or an extra (not the self-references like pix2pix[eval])."""
    project = read_pyproject()["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(requirement for extra in extras for requirement in extra)]
    names = {normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)[0]) for requirement in requirements}
    return names - {"pix2pix"}


def imported_top_level_modules() -> dict[str, list[str]]:
    """Third-party top-level modules imported anywhere in the package -> the files importing them."""
    modules: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "pix2pix" and top not in sys.stdlib_module_names | TYPE_CHECKER_ONLY:
                    modules.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return modules


def test_the_version_is_written_once():
    project = read_pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("pix2pix") == pix2pix.__version__


def test_every_imported_third_party_package_is_declared():
    distributions_of = importlib.metadata.packages_distributions()  # import name -> distributions (PIL -> Pillow)
    declared = declared_distributions()
    modules = imported_top_level_modules()
    assert {"torch", "numpy", "PIL"} <= modules.keys()  # the scan sees the imports
    undeclared = {}
    for module, files in modules.items():
        distributions = {normalize(name) for name in distributions_of.get(module, [])}
        if not distributions & declared:
            undeclared[module] = (sorted(distributions) or "not installed", sorted(set(files)))
    assert not undeclared, f"imported but not declared in pyproject.toml (module: distribution, files): {undeclared}"


def test_the_wheel_carries_py_typed_the_license_and_the_data_files(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info/ next to pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "pix2pix", ignore=shutil.ignore_patterns("__pycache__"))
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = tmp_path / "dist" / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"pix2pix-{pix2pix.__version__}.dist-info/METADATA").decode()
    assert {"pix2pix/py.typed", f"pix2pix-{pix2pix.__version__}.dist-info/licenses/LICENSE"} <= names
    assert {"pix2pix/recipes/demo.toml", "pix2pix/serve/static/index.html"} <= names
    assert f"\nVersion: {pix2pix.__version__}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "\nRequires-Python: >=3.11.4\n" in metadata
    assert 'Requires-Dist: tensorboard>=2.14; extra == "tensorboard"' in metadata  # optional, not a dependency


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the pix2pix developers" in text


def test_citation_file_describes_the_software_and_cites_the_paper():
    text = (ROOT / "CITATION.cff").read_text()
    try:
        import yaml
    except ModuleNotFoundError:  # no YAML parser installed: check the top-level keys and the paper's fields
        top_level = set(re.findall(r"^([a-z-]+):", text, re.MULTILINE))
        assert {"cff-version", "message", "title", "authors", "type", "preferred-citation"} <= top_level
        for line in ('doi: "10.1109/CVPR.2017.632"', "start: 1125", "end: 1134", "year: 2017", "family-names: Efros"):
            assert line in text
        assert "Image-to-Image Translation with Conditional Adversarial Networks" in text
        return
    citation = yaml.safe_load(text)
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    paper = citation["preferred-citation"]
    assert paper["title"] == "Image-to-Image Translation with Conditional Adversarial Networks"
    assert [author["family-names"] for author in paper["authors"]] == ["Isola", "Zhu", "Zhou", "Efros"]
    assert (paper["year"], paper["start"], paper["end"], paper["doi"]) == (2017, 1125, 1134, "10.1109/CVPR.2017.632")


def run_python(code: str, **environment: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"} | environment
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_importing_the_library_leaves_the_process_environment_alone():
    # every module of the package (not __main__, which runs the command), torch and the extras included
    code = (
        "import importlib, os, pkgutil, pix2pix\n"
        "modules = pkgutil.walk_packages(pix2pix.__path__, 'pix2pix.')\n"
        "names = [m.name for m in modules if m.name != 'pix2pix.__main__']\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), os.environ.get('OMP_WAIT_POLICY'))"
    )
    count, policy = run_python(code).split()
    assert int(count) > 40 and policy == "None"


def test_the_command_line_process_sets_passive_waits_before_torch_loads():
    code = (
        "import os, sys\n"
        "from pix2pix.runtime import tune_process_for_cli\n"
        "tune_process_for_cli()\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    assert run_python(code) == "PASSIVE False"
    assert run_python(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"  # the user's own setting wins


def test_pix2pix_command_waits_passively():
    code = (
        "import os, sys\n"
        "from pix2pix.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    assert run_python(code).splitlines()[-1] == "PASSIVE False"
