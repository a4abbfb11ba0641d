#!/bin/sh
# Instructions per DIOS call, counted by callgrind (exact and repeatable, where
# timings on a shared VM are not). Builds Profiles/CallCost in release, runs
#   local N   N stream messages on one core, then N with a select before each read
#   wire N    N round trips between two in-process nodes over in-memory frames
#   names N   N weak lookups of a name held on the other of two such nodes,
#             then N of a name held here
# under valgrind, and prints calls and instructions per call for the DIOS
# functions called at least MIN_CALLS times.
#
# Usage (from anywhere): Bench/callgrind.sh local|wire|names [N] [MIN_CALLS]
set -eu
cd "$(dirname "$0")"
mode=${1:-local}
count=${2:-20000}
[ "$mode" != local ] && [ $# -lt 2 ] && count=2000  # two nodes poll while idle: slow under valgrind
min=${3:-$count}
# A cached build plan does not see files added to the DIOS package since
# (SwiftPM re-plans a path dependency only when a manifest changes): plan anew.
rm -f .build/release.yaml
swift build -c release --product CallCost
# valgrind 3.19 cannot read this toolchain's DWARF ("possibly corrupted
# debuginfo"): run a copy without it (the symbols stay).
strip --strip-debug -o .build/CallCost.nodebug .build/release/CallCost
valgrind --tool=callgrind --callgrind-out-file=".build/callgrind.$mode.out" .build/CallCost.nodebug "$mode" "$count"
python3 callgrind-calls.py ".build/callgrind.$mode.out" "$min"
