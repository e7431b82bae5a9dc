"""tools/lent_image.py: what a GPU lease can import is this package's requirements, and `run` hides the rest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata

from tests.helpers import TOOLS, load_tool, make_folder_corpus

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
    # pesq has no wheel for the lease and is not on the image: hidden if installed here, absent otherwise; so is
    # librosa, which the lease no longer carries; soundfile travels as a wheel
    program = ("import importlib.util as u; print(u.find_spec('pesq') is None, u.find_spec('librosa') is None, "
               "u.find_spec('soundfile') is not None)")
    result = subprocess.run([sys.executable, str(TOOLS / "lent_image.py"), "run", "--", sys.executable, "-c",
                             program], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


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


def _checkout(root):
    """A git checkout with one tracked file, as the device tool would copy it."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "README.md").write_text("x" * 1000)
    subprocess.run(["git", "-C", str(root), "add", "README.md"], check=True)
    return root


def test_prepare_packs_the_corpus_ignores_what_it_carries_and_prints_the_call(tmp_path, capsys):
    root = _checkout(tmp_path / "checkout")
    make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=2, seconds=0.2)
    assert lent_image.main(["prepare", "--corpus", str(tmp_path / "corpus"), "--root", str(root), "--no-wheels",
                            "--workers", "1"]) == 0
    packed = sorted(p.relative_to(root / ".gpu" / "corpus").as_posix() for p in (root / ".gpu").rglob("*.ogg"))
    assert packed == ["spk0/utt00.ogg", "spk0/utt01.ogg", "spk1/utt00.ogg", "spk1/utt01.ogg"]
    # carried paths are ignored, so the call does not also copy them as untracked files
    for path in (".gpu", ".whl"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=root).returncode == 0
    tree, carried = lent_image.tree_bytes(root, [".gpu", ".whl"])
    assert tree == 1000 and carried == sum(f.stat().st_size for f in (root / ".gpu").rglob("*") if f.is_file())
    out = capsys.readouterr().out
    assert "gpu_session.sh" in out and "carry ['.gpu', '.whl']" in out
    assert "gpu_session.sh --more true" in out and "--minutes M" in out  # the second call, for the time left
    # a second run resumes: nothing to pack, nothing added to the excludes again
    exclude = (root / ".git" / "info" / "exclude").read_text()
    assert lent_image.main(["prepare", "--corpus", str(tmp_path / "corpus"), "--root", str(root), "--no-wheels",
                            "--workers", "1"]) == 0
    assert (root / ".git" / "info" / "exclude").read_text() == exclude


def test_prepare_refuses_a_missing_corpus_and_a_carry_over_the_limit(tmp_path, capsys, monkeypatch):
    root = _checkout(tmp_path / "checkout")
    assert lent_image.main(["prepare", "--corpus", str(tmp_path / "nowhere"), "--root", str(root)]) == 1
    assert "no such corpus folder" in capsys.readouterr().err
    make_folder_corpus(tmp_path / "corpus", speakers=1, utterances=1, seconds=0.2)
    monkeypatch.setattr(lent_image, "CARRY_LIMIT", 1500)  # the checkout alone is 1,000 bytes
    assert lent_image.main(["prepare", "--corpus", str(tmp_path / "corpus"), "--root", str(root), "--no-wheels",
                            "--workers", "1"]) == 1
    assert "more than one call takes" in capsys.readouterr().err

