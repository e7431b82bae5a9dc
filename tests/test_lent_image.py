"""tools/lent_image.py: what a GPU lease can import is this package's requirements, and `run` hides the rest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata

from tests.helpers import TOOLS, load_tool

ROOT = TOOLS.parent
lent_image = load_tool("lent_image")


def test_every_requirement_reaches_the_lent_machine():
    # A new dependency must be on the image or carried as a wheel, or the lease's stages fail there.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from packaging.requirements import Requirement

    required = {lent_image.normalized(Requirement(line).name) for line in project["dependencies"]}
    available = lent_image.available_distributions()
    assert required - available == set()
    # and what the carried wheels need in turn (as installed here, for the lent machine's Python)
    for wheel in lent_image.CARRIED_WHEELS:
        assert lent_image.requirement_names(wheel) - available == set(), wheel


def test_hide_missing_hides_installed_distributions_outside_the_list():
    program = textwrap.dedent(f"""
        import importlib.util, sys
        sys.path.insert(0, {str(TOOLS)!r})
        import lent_image
        lent_image.hide_missing({{"numpy"}})
        found = lambda name: importlib.util.find_spec(name) is not None
        print(found("numpy"), found("yaml"), found("json"), found("speechvq"))
        try:
            import yaml
        except ModuleNotFoundError:
            print("hidden")
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    # an allowed distribution, a hidden one (PyYAML), the standard library, this checkout
    assert result.stdout.split() == ["True", "False", "True", "True", "hidden"]


def test_run_gives_the_command_the_image_view():
    # pesq has no wheel for the lease and is not on the image: hidden if installed here, absent otherwise
    program = "import importlib.util as u; print(u.find_spec('pesq') is None, u.find_spec('librosa') is not None)"
    result = subprocess.run([sys.executable, str(TOOLS / "lent_image.py"), "run", "--", sys.executable, "-c",
                             program], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_run_passes_the_exit_status_on():
    result = subprocess.run([sys.executable, str(TOOLS / "lent_image.py"), "run", "--", sys.executable, "-c",
                             "raise SystemExit(3)"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 3


def test_carried_wheels_are_installed_here():
    # `wheels` pins each to the version installed here, so the lease runs what the tests ran
    missing = []
    for name in lent_image.CARRIED_WHEELS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    assert missing == []
