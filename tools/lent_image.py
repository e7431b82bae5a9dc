"""What the lent GPU machine has, what a lease carries to it, and a way to run anything here as if there.

The lent machine (the `device` tool's 'cuda' image) has PyTorch and a long list of packages but not all of
this project's: soundfile, pystoi and constriction (and soundfile's cffi and pycparser) travel as wheels in the
lease's 64 MiB carry, PESQ (no wheel) and DNSMOS (too large to carry beside the corpus) stay behind. A lease is
a few minutes that cannot be repeated, so a stage that imports something the image lacks must fail here first,
not there.

    python tools/lent_image.py prepare --corpus CORPUS    # .gpu/corpus, .whl, checks the carry, prints the call
    python tools/lent_image.py wheels .whl                # download the carried wheels (cp312, no deps)
    python tools/lent_image.py run -- bash recipes/folder/gpu_session.sh --cpu-smoke

`run` executes a command with every installed distribution that is neither on the image nor carried hidden
from Python's imports (a `sitecustomize` on PYTHONPATH installs `hide_missing`); the smoke test of
gpu_session.sh runs that way. Torch's own requirements count as the image's: the image's torch brings its
own.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Optional, Sequence

# Distributions on the lent image, as the device tool's KINDS.md listed them (read on a machine 2026-11-17).
IMAGE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize
huggingface-hub hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson
six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision
tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())

# What a lease carries as wheels (README, "Training on a lent GPU"): this package's requirements and the
# evaluation's STOI, with the requirements of each that the image lacks. Not librosa (and its soxr, audioread,
# decorator, pooch, platformdirs) since 2026-12-03: the package computes its mel spectrograms in torch and no
# longer imports it; only the tests (a comparison) and DNSMOS's speechmos, which stays behind, use it.
CARRIED_WHEELS = ("soundfile", "cffi", "pycparser", "pystoi", "constriction")

LENT_PYTHON = "3.12"  # the image's python3 (KINDS.md: Python 3.12.3)

CARRY_LIMIT = 64 * 2**20  # what one device call takes: the working tree and the carried paths together
CORPUS_COMPRESSION = 0.96  # Opus at about 19 kbit/s: the offline corpus in 40 MiB (README)
# --upgrade: a second call on the warm machine finds /tmp/site filled by the first (pip would keep what is there);
# --no-index: the lent machine reaches no index
LEASE_COMMAND = ('python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site '
                 '.whl/*.whl && PYTHONPATH=/tmp/site '
                 'bash recipes/folder/gpu_session.sh --corpus_dir "$PWD/.gpu/corpus" --out "$OUT" --minutes 4.5')
# The second call, for the device time the first leaves: the main model continues alone on the warm machine.
MORE_COMMAND = LEASE_COMMAND.replace("gpu_session.sh", "gpu_session.sh --more true").replace("4.5", "M")


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(distribution: str) -> set[str]:
    """Normalized names of what an installed distribution needs on the lent machine's Python: its
    requirements without extras, with environment markers evaluated for Python `LENT_PYTHON` on Linux.
    Empty when the distribution is not installed here."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return set()
    environment = {"python_version": LENT_PYTHON, "python_full_version": LENT_PYTHON + ".3", "extra": "",
                   "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                   "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    names = set()
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            names.add(normalized(requirement.name))
    return names


def available_distributions() -> set[str]:
    """Normalized names of the distributions a lease can import: the image's, the carried wheels, and what
    the installed torch, torchaudio and triton require (the image's torch brings its own), and this project."""
    names = {normalized(n) for n in IMAGE_PACKAGES} | {normalized(n) for n in CARRIED_WHEELS} | {"speechvq"}
    for bundled in ("torch", "torchaudio", "triton"):
        names |= requirement_names(bundled)
    return names


def hide_missing(available: Optional[set[str]] = None) -> None:
    """Make installed top-level modules of distributions outside `available` (default
    `available_distributions()`) unimportable in this process, as if not installed (`find_spec` returns
    None). Modules outside site-packages (this checkout, the standard library) are untouched. Replaces the
    path finder in `sys.meta_path`; call it before the imports it should see.
    """
    from importlib import metadata
    from importlib.machinery import PathFinder

    allowed = available_distributions() if available is None else available
    owners: dict[str, list[str]] = {}  # top-level module -> its distributions, read on the first lookup
    paths = sysconfig.get_paths()
    site_dirs = {Path(paths[key]).resolve() for key in ("purelib", "platlib")}

    class HidingPathFinder(PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            spec = super().find_spec(name, path, target)
            if spec is None or path is not None:  # submodules follow their package
                return spec
            # a package's folder or a module's file; only what sits directly in site-packages is a
            # distribution's (not the standard library, this checkout, or what setuptools vendors)
            locations = spec.submodule_search_locations
            where = Path(next(iter(locations)) if locations else spec.origin or "")
            if where.resolve().parent not in site_dirs:
                return spec
            if not owners:
                owners.update(metadata.packages_distributions())
            return spec if any(normalized(d) in allowed for d in owners.get(name, [])) else None

    # Replacing (not preceding) the path finder: a finder in front that returns None would let it find
    # the module anyway.
    sys.meta_path[:] = [HidingPathFinder if finder is PathFinder else finder for finder in sys.meta_path]


def write_sitecustomize(directory: Path) -> Path:
    """Write a sitecustomize.py into `directory` that calls `hide_missing` at start-up; returns its path."""
    path = directory / "sitecustomize.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
                    "import lent_image\nlent_image.hide_missing()\nsys.path.pop(0)\n")
    return path


def download_wheels(directory: Path, python_version: str = LENT_PYTHON) -> int:
    """pip-download the carried wheels for the lent machine's Python into `directory`, each at the version
    installed here (so the lease runs what the tests ran); returns pip's exit status."""
    from importlib import metadata

    pins = []
    for name in CARRIED_WHEELS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
               "--python-version", python_version, "--dest", str(directory), *pins]
    return subprocess.call(command)


def tree_bytes(root: Path, paths: Sequence[str]) -> tuple[int, int]:
    """(bytes of what a device call copies from the checkout at `root`: tracked files and untracked ones git
    does not ignore, bytes of the ignored `paths` that are carried besides)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    tree = sum((root / name).stat().st_size for name in listed if name and (root / name).is_file())
    carried = sum(f.stat().st_size for path in paths for f in (root / path).rglob("*") if f.is_file())
    return tree, carried


def ignore_locally(root: Path, paths: Sequence[str]) -> list[str]:
    """Add each of `paths` that git does not ignore yet to .git/info/exclude (so that a device call does not copy
    it twice, once as untracked and once carried); returns those added."""
    added = [path for path in paths
             if subprocess.run(["git", "check-ignore", "-q", path], cwd=root).returncode != 0]
    if added:
        exclude = Path(subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=root,
                                      capture_output=True, text=True, check=True).stdout.strip())
        exclude = exclude if exclude.is_absolute() else root / exclude
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as out:
            out.write("".join(f"/{path}/\n" for path in added))
    return added


def prepare(root: Path, corpus: Path, wheels: bool = True, workers: int = 2) -> int:
    """Make what a lease's call needs at `root`: the corpus packed into .gpu/corpus (resumes), the wheels in
    .whl, both ignored by git; then check that the call's copy fits CARRY_LIMIT and print the call.
    Returns 0, or 1 with one line on stderr."""
    if not corpus.is_dir():
        print(f"lent_image: no such corpus folder: {corpus}", file=sys.stderr)
        return 1
    carry = [".gpu", ".whl"]
    for path in ignore_locally(root, carry):
        print(f"lent_image: {path}/ added to .git/info/exclude", file=sys.stderr)
    packed = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "pack_corpus.py"), str(corpus),
                             str(root / ".gpu" / "corpus"), "--compression", str(CORPUS_COMPRESSION),
                             "--workers", str(workers)])
    if packed.returncode != 0:
        print("lent_image: packing the corpus failed", file=sys.stderr)
        return 1
    (root / ".whl").mkdir(exist_ok=True)
    if wheels and download_wheels(root / ".whl") != 0:
        print("lent_image: downloading the wheels failed", file=sys.stderr)
        return 1
    tree, carried = tree_bytes(root, carry)
    total = tree + carried
    print(f"a device call copies {tree / 2**20:.1f} MiB of the checkout and carries {carried / 2**20:.1f} MiB "
          f"(.gpu, .whl): {total / 2**20:.1f} of {CARRY_LIMIT / 2**20:.0f} MiB")
    if total > CARRY_LIMIT:
        print(f"lent_image: {total / 2**20:.1f} MiB is more than one call takes; pack the corpus harder "
              f"(tools/pack_corpus.py --compression) or leave files out", file=sys.stderr)
        return 1
    print(f"the call (device tool `run`, carry {carry}, timeout_s 600):\n  {LEASE_COMMAND}")
    print(f"then at once, while the machine is warm (30 s; status: warm true), with the same carry and M = (status's "
          f"budget_left_s - 120) / 60 minutes, at most 8; give_back after it:\n  {MORE_COMMAND}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("wheels", help="download the carried wheels for the lent machine's Python")
    wheels.add_argument("directory", type=Path)
    run = commands.add_parser("run", help="run a command with what the lent image lacks hidden from Python")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    ready = commands.add_parser("prepare", help="pack the corpus, fetch the wheels, check the carry, print the call")
    ready.add_argument("--corpus", type=Path, required=True, help="CORPUS/<speaker>/*.flac (the offline corpus)")
    ready.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                       help="the checkout the call runs from")
    ready.add_argument("--no-wheels", dest="wheels", action="store_false", help="leave .whl as it is")
    ready.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.command == "wheels":
        args.directory.mkdir(parents=True, exist_ok=True)
        return download_wheels(args.directory)
    if args.command == "prepare":
        return prepare(args.root.resolve(), args.corpus, args.wheels, args.workers)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command")
    with tempfile.TemporaryDirectory(prefix="lent-image-") as site:
        write_sitecustomize(Path(site))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([site] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
