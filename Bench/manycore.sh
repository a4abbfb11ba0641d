#!/usr/bin/env bash
# The benchmarks on a machine with many free cores, where no Swift or DPDK is
# installed (the 16-core machine the device tool sometimes lends a session).
#
#   Bench/manycore.sh bundle [BASELINE]
#                              here: builds release and packs dios, `ip`
#                              and the shared libraries they and DPDK's virtual-device
#                              drivers load into devicebin/bundle.tar.xz (git-ignored
#                              through .git/info/exclude: add /devicebin/ there);
#                              BASELINE, a `dios` built from another commit, goes
#                              in as dios-baseline, and the run alternates the two
#   Bench/manycore.sh run      there, from the repository root, as root: unpacks the
#                              bundle, reserves hugepages, runs the benchmarks with
#                              every instance on a core of its own, and writes each
#                              one's output to $OUT (or /tmp/manycore); ROUNDS=N
#                              (default 3) runs per binary of the names benchmark and
#                              of `bench ipc`, and with a baseline of memif's `bench
#                              ipc --remote` too, the binaries taking turns;
#                              BENCHES="names ipc processes remote" (the default) picks sections;
#                              "scale" adds `dios bench scale` (pairs of instances at once).
#                              It puts links in DPDK's plugin folder, so it refuses
#                              a machine where DPDK is installed (run `dios bench`
#                              there directly).
#
# With the device tool: run `Bench/manycore.sh bundle`, then
#   run(command: "bash Bench/manycore.sh run", carry: ["devicebin"], timeout_s: 300)
# A call takes about a minute of device time on 16 cores; the figures it
# prints are the ones the notes quote as "16 cores".
set -uo pipefail

pmds=/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0

bundle() {
    set -e
    swift build -c release --product dios
    local b
    b=$(mktemp -d)
    mkdir -p "$b/bin" "$b/lib" "$b/pmds" "$b/bpf"
    cp .build/release/dios "$(command -v ip)" "$b/bin/"
    # libdios and the process benchmark's program, found there through $ORIGIN.
    ./libdios/build.sh "$b/libdios" >/dev/null
    cp -L "$b/libdios/lib/libdios.so.0" "$b/lib/"
    cc -std=c11 -O2 -Wall -Wextra -Werror -I"$b/libdios/include" -o "$b/bin/dios-ipc" Bench/Programs/dios-ipc.c \
        -L"$b/lib" -l:libdios.so.0 -Wl,-rpath,'$ORIGIN/../lib'
    rm -rf "$b/libdios"
    if [ -n "${1:-}" ]; then cp "$1" "$b/bin/dios-baseline"; fi
    # libxdp loads the XDP programs that steer packets to an AF_XDP socket from files.
    cp /usr/lib/x86_64-linux-gnu/bpf/xsk_def_xdp_prog*.o /usr/lib/x86_64-linux-gnu/bpf/xdp-dispatcher.o "$b/bpf/"
    # EAL loads every driver in its plugin folder: carry only the virtual
    # devices we use, and whatever each needs. As Debian does, the folder will
    # hold links to the libraries, so that a driver loaded from it and the
    # same library loaded as another's dependency are one copy (two copies of
    # the vdev bus register two buses, and no device probes).
    for d in librte_bus_vdev librte_mempool_ring librte_net_memif librte_net_af_packet librte_net_af_xdp; do
        cp -L "$pmds/$d.so.23" "$b/lib/"
        echo "$d" >> "$b/pmds/drivers"
    done
    { for f in "$b"/bin/* "$b"/lib/librte_*.so.23; do ldd "$f"; done; } |
        awk '$3 ~ /^\// {print $3}' | sort -u |
        grep -v -e '/libc\.so' -e '/libm\.so' -e 'ld-linux' -e 'libstdc++' -e 'libgcc_s' |
        xargs -I{} cp -n -L {} "$b/lib/"
    mkdir -p devicebin
    tar -C "$b" -cf - . | xz -T0 -6 > devicebin/bundle.tar.xz
    rm -rf "$b"
    ls -l devicebin/bundle.tar.xz
}

run() {
    local out=${OUT:-/tmp/manycore} b=/opt/dios-bundle  # EAL refuses drivers under a world-writable folder
    # (Not `find | grep -q`: under pipefail, find's SIGPIPE would make it false.)
    if [ -d "$pmds" ] && [ -n "$(find "$pmds" -mindepth 1 ! -lname "$b/lib/*" -print -quit)" ]; then
        echo "DPDK is installed here ($pmds): run dios bench directly" >&2
        exit 1
    fi
    mkdir -p "$out" "$b"
    tar -C "$b" -xJf devicebin/bundle.tar.xz || { echo "no bundle: run 'Bench/manycore.sh bundle' first" >&2; exit 1; }
    mkdir -p "$pmds"
    while read -r d; do ln -sf "$b/lib/$d.so.23" "$pmds/$d.so"; done < "$b/pmds/drivers"
    export LD_LIBRARY_PATH=$b/lib PATH=$b/bin:$PATH LIBXDP_OBJECT_PATH=$b/bpf
    local dios=$b/bin/dios
    {
        echo "== machine"
        nproc; uname -r
        grep -m1 'model name' /proc/cpuinfo
        lscpu 2>/dev/null | grep -i -e '^Thread' -e '^Core' -e '^Socket' -e 'NUMA node(s)'
        for c in 2 3 10; do
            echo "cpu$c siblings: $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list 2>/dev/null)"
        done
        command -v ip || echo "no ip command: the veth rows will be skipped"
        ./hugepages.sh 1024 || echo "no hugepages: DPDK rows will be skipped"
    } 2>&1 | tee "$out/machine.txt"
    local which runs=("dios") wanted=" ${BENCHES:-names ipc processes remote} "
    [ -x "$b/bin/dios-baseline" ] && runs=("dios" "dios-baseline")
    # 1. Issue 5: six instances, each polling a core of its own; with a
    # baseline, the two binaries take turns ($ROUNDS runs each, default 3, busy; 1 adaptive).
    if [[ $wanted == *" names "* ]]; then
        for round in $(seq "${ROUNDS:-3}"); do
            for which in "${runs[@]}"; do
                echo "== $which bench names --busy (round $round)"
                timeout 60 "$b/bin/$which" bench names --busy 2>&1 | tee -a "$out/names-busy.txt" | grep -E "^(lookup|create)"
            done
        done
        for which in "${runs[@]}"; do
            echo "== $which bench names (adaptive)"
            timeout 60 "$b/bin/$which" bench names 2>&1 | tee -a "$out/names-adaptive.txt" | tail -3
        done
    fi
    # 2. Issue 3: one node, two cores, busy (and the same run's floor and Unix
    # sockets); with a baseline, the binaries take turns, $ROUNDS runs each.
    if [[ $wanted == *" ipc "* ]]; then
        for round in $(seq "${ROUNDS:-3}"); do
            for which in "${runs[@]}"; do
                echo "== $which bench ipc (cores 2,3, round $round)"
                timeout 90 "$b/bin/$which" bench ipc --cores 2,3 --payloads 64 2>&1 | tee -a "$out/ipc-$which.txt" |
                    grep -E "^(floor|ring-raw|dios|uds-poll) |DIOS/floor|throughput"
            done
        done
    fi
    # 2b. Programs as processes: every instance and task process on a core of
    # its own (instances on 2,3; the pinging and echoing processes on 4,5).
    if [[ $wanted == *" processes "* ]]; then
        for round in $(seq "${ROUNDS:-3}"); do
            echo "== dios bench ipc --processes (cores 2,3, processes 4,5, round $round)"
            timeout 120 "$dios" bench ipc --processes --cores 2,3 --process-cores 4,5 --program "$b/bin/dios-ipc" 2>&1 |
                tee -a "$out/processes.txt" | grep -E "^(floor|dios|dios-proc-[a-z]+|uds-poll) |/dios|spawn"
        done
    fi
    # 3. Issue 4: across nodes, DPDK memif / af_packet / af_xdp beside raw DPDK
    # and Linux UDP (the whole table once, then memif alone, taking turns).
    if [[ $wanted == *" remote "* ]]; then
        echo "== dios bench ipc --remote (cores 2,3)"
        timeout 150 "$dios" bench ipc --remote --cores 2,3 --iterations 20000 --warmup 2000 --payloads 64,1024 2>&1 |
            tee "$out/remote.txt"
        if grep -q "DPDK rows skipped\|skipped: no DPDK port" "$out/remote.txt"; then
            echo "== DPDK did not start: its memif ports again, with DPDK's debug log"
            DIOS_DPDK_LOG_LEVEL=debug timeout 60 "$dios" bench ipc --remote --links memif --cores 2,3 --iterations 1000 \
                --warmup 100 --payloads 64 > "$out/remote-debug.txt" 2>&1
            grep -i -E "memif|error|fail|cannot" "$out/remote-debug.txt" | head -40
        elif [ ${#runs[@]} -gt 1 ]; then
            for round in $(seq "${ROUNDS:-3}"); do
                for which in "${runs[@]}"; do
                    echo "== $which bench ipc --remote --links memif (cores 2,3, round $round)"
                    timeout 60 "$b/bin/$which" bench ipc --remote --links memif --cores 2,3 --iterations 20000 \
                        --payloads 64 2>&1 | tee -a "$out/memif-$which.txt" | grep -E "^(dpdk-raw|dios)-memif |DIOS/raw"
                done
            done
        fi
    fi
    # 4. Many cores at once: 1, 2, 4, 8 pairs of instances streaming and
    # ping-ponging together, next to bare rings on the same CPUs.
    if [[ $wanted == *" scale "* ]]; then
        echo "== dios bench scale"
        timeout 150 "$dios" bench scale --messages 5000000 2>&1 | tee "$out/scale.txt"
    fi
}

case "${1:-}" in
    bundle) bundle "${2:-}" ;;
    run) run ;;
    *) echo "usage: $0 bundle|run" >&2; exit 2 ;;
esac
