#!/usr/bin/env bash
# Builds the wire and channel fuzzers with libFuzzer and AddressSanitizer and runs them for a
# bounded time over the committed corpus (new inputs go to a scratch folder, so
# the tree stays clean). Usage: Tests/Fuzz/run.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
out=.build/fuzz
rm -rf "$out/src" && mkdir -p "$out/new" "$out/src"
# One module: the sources are copied without their imports of each other.
for f in Sources/DIOSCore/*.swift Sources/DIOSWire/*.swift Sources/DIOSTransport/EthernetUDP.swift; do
    sed -E '/^(public |package )?import (DIOSCore|DIOSWire)$/d' "$f" > "$out/src/$(basename "$(dirname "$f")")-$(basename "$f")"
done
# The wire's frame protection calls libsodium through the C shim: compiled
# here, with a module map of its own for the header.
mkdir -p "$out/cdioscrypto"
clang -O1 -fsanitize=address -c CSupport/CDIOSCrypto/crypto.c -I CSupport/CDIOSCrypto/include -o "$out/crypto.o"
printf 'module CDIOSCrypto {\n  header "%s"\n  export *\n}\n' "$PWD/CSupport/CDIOSCrypto/include/dios_crypto.h" \
    > "$out/cdioscrypto/module.modulemap"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name DIOSFuzz -suppress-warnings \
    -I "$out/cdioscrypto" "$out"/src/*.swift Tests/Fuzz/WireFuzz.swift "$out/crypto.o" -lsodium -o "$out/wire-fuzz"
# The channel's decoder: what a task process writes into its ring.
rm -rf "$out/channel-src" && mkdir -p "$out/channel-src" "$out/channel-new"
for f in Sources/DIOSCore/*.swift Sources/DIOSChannel/*.swift; do
    sed -E '/^(public |package )?import (DIOSCore|DIOSChannel)$/d' "$f" > "$out/channel-src/$(basename "$(dirname "$f")")-$(basename "$f")"
done
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name DIOSChannelFuzz -suppress-warnings \
    "$out"/channel-src/*.swift Tests/Fuzz/ChannelFuzz.swift -o "$out/channel-fuzz"
# A crash ends the run at once, with a failing status: the Swift runtime's
# backtracer is off (left on, it kept the pipe below open, and the run waiting,
# long after libFuzzer had saved the input and exited), and the input goes to
# $out/crash-* (reproduce: $out/wire-fuzz $out/crash-...), not into the tree.
# The wire gets two thirds of the time, the channel a third.
SWIFT_BACKTRACE=enable=no "$out/wire-fuzz" -max_total_time="$(( seconds * 2 / 3 ))" -print_final_stats=1 \
    -artifact_prefix="$out/" "$out/new" Tests/Fuzz/corpus/wire 2>&1 | tail -n 15
SWIFT_BACKTRACE=enable=no "$out/channel-fuzz" -max_total_time="$(( seconds / 3 ))" -print_final_stats=1 \
    -artifact_prefix="$out/channel-" "$out/channel-new" Tests/Fuzz/corpus/channel 2>&1 | tail -n 15
