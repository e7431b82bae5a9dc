"""Imports point one way (STYLE.md section 1): models see torch and config; the bitstream sees the standard
library; inference never imports train; only the CLI talks to users."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "speechvq"
STDLIB_ONLY = {"speechvq.version", "speechvq.errors", "speechvq.atomic", "speechvq.bitstream"}
# Internal modules each part may import (a module may always import inside its own sub-package).
ALLOWED = {
    "speechvq.version": set(),
    "speechvq.errors": set(),
    "speechvq.atomic": set(),
    "speechvq.bitstream": {"speechvq.atomic", "speechvq.errors"},
    "speechvq.config": {"speechvq.errors"},
    "speechvq.audio": {"speechvq.atomic", "speechvq.errors"},
    # the models' inputs and outputs are mu-law classes, whose definition lives in audio
    # pitch: the tracker behind the pitch stream, part of the model's encoder side (torch only, no weights)
    "speechvq.pitch": {"speechvq.config"},
    "speechvq.postfilter": set(),  # the pitch post-filter: torch arithmetic on decoded waveforms
    "speechvq.models": {"speechvq.config", "speechvq.audio", "speechvq.pitch"},
    "speechvq.checkpoint": {"speechvq.atomic", "speechvq.config", "speechvq.errors", "speechvq.models",
                            "speechvq.version"},
    "speechvq.data": {"speechvq.atomic", "speechvq.audio", "speechvq.config", "speechvq.errors"},
    "speechvq.train": {"speechvq.atomic", "speechvq.audio", "speechvq.checkpoint", "speechvq.config",
                       "speechvq.data", "speechvq.errors", "speechvq.models", "speechvq.version"},
    # atomic and version: the engine planner's cache file (written atomically, keyed by the package version)
    # postfilter: DecodeOptions names the post-filter's default gain
    "speechvq.generation": {"speechvq.atomic", "speechvq.audio", "speechvq.models", "speechvq.postfilter",
                            "speechvq.version"},
    "speechvq.inference": {"speechvq.atomic", "speechvq.audio", "speechvq.bitstream", "speechvq.checkpoint",
                           "speechvq.config", "speechvq.entropy", "speechvq.errors", "speechvq.generation",
                           "speechvq.models", "speechvq.pitch", "speechvq.postfilter", "speechvq.version"},
    "speechvq.metrics": {"speechvq.audio", "speechvq.errors", "speechvq.pitch"},
    "speechvq.plots": {"speechvq.atomic", "speechvq.audio"},
    "speechvq.similarity": {"speechvq.errors"},
    "speechvq.analysis": {"speechvq.audio", "speechvq.errors"},  # audio: the mu-law silence a crop starts from
    "speechvq.assets": {"speechvq.errors"},
    # errors and version: an engine that cannot run here, and the code version that a reusable decode's key names
    "speechvq.evaluation": {"speechvq.atomic", "speechvq.audio", "speechvq.codec", "speechvq.data",
                            "speechvq.errors", "speechvq.generation", "speechvq.inference", "speechvq.metrics",
                            "speechvq.models", "speechvq.plots", "speechvq.postfilter", "speechvq.version"},
    "speechvq.entropy": set(),
    "speechvq.codec": {"speechvq.bitstream", "speechvq.checkpoint", "speechvq.entropy", "speechvq.errors",
                       "speechvq.inference", "speechvq.models", "speechvq.version"},
    # the web page: the codec and inference API the CLI uses, never a copy of it; no training
    "speechvq.web": {"speechvq.assets", "speechvq.audio", "speechvq.bitstream", "speechvq.codec", "speechvq.errors",
                     "speechvq.generation", "speechvq.inference", "speechvq.plots"},
    "speechvq.cli": {"*"},
    "speechvq.__main__": {"speechvq.cli"},
    "speechvq": {"*"},  # __init__: the public API re-exports
}
THIRD_PARTY_FOR_MODELS = {"torch"}
THIRD_PARTY_FOR_ENTROPY = {"numpy", "constriction"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module:
                    found.add(target)
                else:  # `from . import x` imports the submodules x
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def group_of(name: str) -> str:
    # "speechvq" (the package's __init__) is a rule for that one module, not for everything below it
    candidates = [key for key in ALLOWED if name == key or (key != "speechvq" and name.startswith(key + "."))]
    assert candidates, f"{name} has no layering rule: add it to ALLOWED in {__file__}"
    return max(candidates, key=len)


def test_imports_point_one_way():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        group = group_of(name)
        allowed = ALLOWED[group]
        for target in imports_of(path):
            top = target.split(".")[0]
            if top == "speechvq":
                if target == "speechvq" and group != "speechvq":
                    problems.append(f"{name} imports the package root")
                elif "*" not in allowed and target != "speechvq" and group_of(target) not in allowed | {group}:
                    problems.append(f"{name} imports {target}")
            elif group in STDLIB_ONLY and top not in sys.stdlib_module_names:
                problems.append(f"{name} (standard library only) imports {target}")
            elif group in ("speechvq.models", "speechvq.pitch") and top not in sys.stdlib_module_names | THIRD_PARTY_FOR_MODELS:
                problems.append(f"{name} (models: torch only) imports {target}")
            elif group == "speechvq.entropy" and top not in sys.stdlib_module_names | THIRD_PARTY_FOR_ENTROPY:
                problems.append(f"{name} (entropy coding: numpy and constriction) imports {target}")
    assert not problems, "\n".join(problems)


def test_nothing_in_the_package_imports_tools_or_tests():
    for path in PACKAGE.rglob("*.py"):
        for target in imports_of(path):
            assert target.split(".")[0] not in {"tools", "tests"}, f"{module_name(path)} imports {target}"
