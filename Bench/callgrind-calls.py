#!/usr/bin/env python3
"""Per-function call counts and instructions per call from a callgrind output file.

Usage: callgrind-calls.py FILE [MIN_CALLS] [PATTERN ...]

Prints, for each function whose (mangled) name contains one of the patterns
(default: the DIOS modules) and that was called at least MIN_CALLS times
(default 1000): calls, instructions per call including callees, and its own.
Callgrind's totals would mix the idle polling loop with the calls; per call,
the data path's cost reads directly.
"""
import re
import subprocess
import sys
from collections import Counter

path = sys.argv[1]
min_calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
patterns = sys.argv[3:] or ["DIOSKernel", "DIOSWire", "DIOSCore", "DIOSMemory", "4DIOS"]

names, own, inclusive, calls = {}, Counter(), Counter(), Counter()
current = callee = pending = None
cost_line = re.compile(r"^(?:0x[0-9a-f]+|[+-]\d+|\*|\d+)(?:\s+\S+)?\s+(\d+)$")
for line in open(path):
    line = line.rstrip("\n")
    m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3)
        if m.group(1) == "fn":
            current = m.group(2)
        else:
            callee = m.group(2)
        continue
    if line.startswith("calls="):
        pending = (callee, int(line.split("=")[1].split()[0]))
        continue
    m = cost_line.match(line)
    if not m:
        continue
    cost = int(m.group(1))
    if pending:  # the line after calls= is the inclusive cost of those calls
        inclusive[pending[0]] += cost
        calls[pending[0]] += pending[1]
        pending = None
    elif current:
        own[current] += cost

rows = [(k, calls[k]) for k, name in names.items()
        if calls[k] >= min_calls and any(p in name for p in patterns)]
rows.sort(key=lambda r: -inclusive[r[0]])
mangled = [names[k] for k, _ in rows]
try:
    demangled = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(mangled),
                               capture_output=True, text=True, check=True).stdout.splitlines()
except (OSError, subprocess.CalledProcessError):
    demangled = mangled
print(f"{'calls':>10} {'instr/call':>11} {'own/call':>9}  function")
for (k, n), name in zip(rows, demangled):
    print(f"{n:>10} {inclusive[k] // n:>11} {own[k] // n:>9}  {name[:140]}")
