#!/usr/bin/env python3
"""Count the instructions and stack accesses in the inner loop of each register panel of the C generation loop.

The C loop (speechvq/generation/csrc/wavenet_step.c) keeps each panel's accumulators in vector registers for
the whole K loop. Compiled for a target with fewer registers than a panel needs, the compiler spills them,
and the inner loop fills with stack loads and stores (the AVX-512 panels built for AVX2 ran 5x slower than
numba). This compiles the library as native.py does for each -march given, disassembles it with objdump, and
prints per panel: the inner loop's instructions, multiply-adds (FMA, or mul + add without FMA), and stack
accesses (memory operands on %rsp or, where it is the frame pointer, %rbp). Spill-free means 0 stack accesses.

    python tools/asm_report.py                                 # native and x86-64-v3, float32 weights
    python tools/asm_report.py --march x86-64 x86-64-v3 native --weights fp16
    python tools/asm_report.py --source old_wavenet_step.c     # another version of the source, to compare
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from speechvq.generation import native

_INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_JUMP_TARGET = re.compile(r"^([0-9a-f]+)\s+<")
_MULTIPLY_ADD = re.compile(r"^v?fn?m(add|sub)\d{3}[ps]s$|^v?mulps$")


@dataclass
class LoopReport:
    """One function's innermost loop that does the most multiply-adds (its K loop, for a panel)."""

    function: str
    instructions: int
    multiply_adds: int
    stack_accesses: int


def disassemble(library: Path) -> dict[str, list[tuple[int, str, str]]]:
    """objdump's instructions of each function: name -> [(address, mnemonic, operands)]."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=True).stdout
    functions: dict[str, list[tuple[int, str, str]]] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if header:
            current = functions.setdefault(header.group(1), [])
            continue
        match = _INSTRUCTION.match(line)
        if match and current is not None:
            current.append((int(match.group(1), 16), match.group(2), match.group(3)))
    return functions


def inner_loop(name: str, instructions: list[tuple[int, str, str]]) -> LoopReport:
    """The loop (a backward jump's span) with the most multiply-adds; the shortest such span."""
    frame_pointer = any(m == "mov" and ops.replace(" ", "") == "%rsp,%rbp" for _, m, ops in instructions)
    stack = re.compile(r"\(%rsp" + (r"|\(%rbp" if frame_pointer else ""))
    best = None
    for index, (address, mnemonic, operands) in enumerate(instructions):
        target = _JUMP_TARGET.match(operands)
        if not mnemonic.startswith("j") or not target or int(target.group(1), 16) > address:
            continue
        start = int(target.group(1), 16)
        body = [(m, ops) for a, m, ops in instructions[: index + 1] if a >= start]
        multiply_adds = sum(1 for m, _ in body if _MULTIPLY_ADD.match(m))
        key = (multiply_adds, -len(body))
        if best is None or key > best[0]:
            spills = sum(1 for _, ops in body if stack.search(ops))
            best = (key, LoopReport(name, len(body), multiply_adds, spills))
    return best[1] if best else LoopReport(name, 0, 0, 0)


def report(march: str, weights: str, source: Path) -> list[LoopReport]:
    """Compile `source` for `march` as native.py does and report each panel function's inner loop."""
    with tempfile.TemporaryDirectory() as folder:
        library = Path(folder) / "step.so"
        native.compile_library(source, library, weights, march)
        functions = disassemble(library)
    return [inner_loop(name, body) for name, body in sorted(functions.items()) if name.startswith("panel_")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--march", nargs="+", default=["native", "x86-64-v3"], help="targets to compile for")
    parser.add_argument("--weights", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument("--source", type=Path, default=native.SOURCE, help="the C source to compile")
    args = parser.parse_args()
    if shutil.which("objdump") is None:
        print("asm_report: objdump not found (Debian: binutils)", file=sys.stderr)
        return 1
    for march in args.march:
        what = native.describe_target(march) if args.source == native.SOURCE else str(args.source)
        print(f"-march={march}, {args.weights} weights: {what}")
        try:
            loops = report(march, args.weights, args.source)
        except RuntimeError as error:  # e.g. half-precision weights for a target without F16C
            print(f"  not built: {str(error).splitlines()[0]}")
            continue
        for loop in loops:
            print(f"  {loop.function:>16}: inner loop {loop.instructions:4d} instructions, "
                  f"{loop.multiply_adds:3d} multiply-adds, {loop.stack_accesses:4d} stack accesses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
