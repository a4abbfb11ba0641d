#!/usr/bin/env python3
"""The layering Package.swift states, checked: every target imports only the
targets and products it declares (SwiftPM's own check lets a target import
anything its dependencies bring in), and every dependency of a library sits in
a lower layer than the target itself. Reads `swift package describe`."""
import json, pathlib, re, subprocess, sys

# Lowest first; a target may depend only on targets of lower layers. Tests and
# executables sit above everything.
LAYERS = [
    {"CLinux", "CDPDK", "CRDMA", "CDIOSChannel", "CDIOSTask", "CDIOSCrypto"},
    {"DIOSCore"},
    {"DIOSMemory", "DIOSDevices"},
    {"DIOSWire", "DIOSChannel"},
    {"DIOSTransport", "DIOSSimulation", "DIOSTaskProcess"},
    {"DIOSKernel"},
    {"DIOSConfig", "DIOSProcess"},
    {"DIOS"},
    {"DIOSHost", "DIOSExamples"},
    {"DIOSMetrics"},
    {"DIOSBench"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
SYSTEM = {"Foundation", "Glibc", "Synchronization", "Dispatch", "Testing", "XCTest", "Darwin", "_Concurrency"}

root = pathlib.Path(__file__).resolve().parent.parent
described = json.loads(subprocess.run(
    ["swift", "package", "describe", "--type", "json"], cwd=root, check=True,
    capture_output=True, text=True).stdout)
import_line = re.compile(
    r"^[ \t]*(?:@\w+[ \t]+)*(?:(?:public|package|internal|private|fileprivate)[ \t]+)?import[ \t]+"
    r"(?:(?:struct|class|enum|protocol|func|var|let|typealias)[ \t]+)?(\w+)", re.M)
problems = []
for target in described["targets"]:
    name = target["name"]
    if target.get("module_type") != "SwiftTarget":
        continue
    declared = set(target.get("target_dependencies", [])) | set(target.get("product_dependencies", []))
    for source in target.get("sources", []):
        text = (root / target["path"] / source).read_text()
        for module in import_line.findall(text):
            if module in SYSTEM or module in declared:
                continue
            problems.append(f"{target['path']}/{source}: imports {module}, which {name} does not declare")
    if name in RANK:
        for dependency in target.get("target_dependencies", []):
            if dependency not in RANK:
                problems.append(f"{name} depends on {dependency}, which has no layer in .ci/check-layering.py")
            elif RANK[dependency] >= RANK[name]:
                problems.append(f"{name} (layer {RANK[name]}) depends on {dependency} (layer {RANK[dependency]}): not below it")
    elif target["type"] == "library":
        problems.append(f"library {name} has no layer in .ci/check-layering.py")
for p in problems:
    print(f"layering: {p}", file=sys.stderr)
print(f"layering: {len(described['targets'])} targets, {len(problems)} problem(s)", file=sys.stderr)
sys.exit(1 if problems else 0)
