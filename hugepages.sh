#!/usr/bin/env bash
# Reserves 2 MiB hugepages and mounts hugetlbfs for DIOS (and DPDK).
#
#   ./hugepages.sh [N]        N pages (default: $DIOS_HUGEPAGES or 512 = 1 GiB)
#
# Idempotent: it only raises the reservation (never lowers one another program
# may rely on), mounts only when no hugetlbfs mount exists, and removes only the
# arena files of DIOS processes that are gone. Prints what it did.
set -euo pipefail

pages="${1:-${DIOS_HUGEPAGES:-512}}"
mountpoint="${DIOS_HUGETLBFS:-/dev/hugepages}"
sysctl=/proc/sys/vm/nr_hugepages

die() { echo "hugepages.sh: $*" >&2; exit 1; }

[[ "$pages" =~ ^[0-9]+$ ]] || die "page count must be a whole number, got '$pages'"
[ "$(id -u)" -eq 0 ] || die "must run as root (writes $sysctl and mounts hugetlbfs); try: sudo $0 $pages"
[ -w "$sysctl" ] || die "$sysctl is not writable: this kernel or container does not allow hugepage reservations"

size_kb=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
[ "$size_kb" = 2048 ] || echo "hugepages.sh: note: default hugepage size is ${size_kb} kB, not 2048 kB"

current=$(cat "$sysctl")
if [ "$current" -ge "$pages" ]; then
  echo "hugepages: $current pages already reserved (wanted $pages): unchanged"
else
  need_kb=$(( (pages - current) * size_kb ))
  avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  [ "$need_kb" -lt "$avail_kb" ] || die "not enough memory: $pages pages need $need_kb kB more, only $avail_kb kB available"
  echo "$pages" > "$sysctl"
  got=$(cat "$sysctl")
  if [ "$got" -lt "$pages" ]; then
    die "asked for $pages hugepages, the kernel reserved $got (memory too fragmented or short; try fewer, or reboot)"
  fi
  echo "hugepages: reserved $got pages of ${size_kb} kB (was $current)"
fi

existing=$(awk '$3 == "hugetlbfs" {print $2; exit}' /proc/mounts)
if [ -n "$existing" ]; then
  echo "hugetlbfs: already mounted at $existing"
else
  mkdir -p "$mountpoint"
  mount -t hugetlbfs -o pagesize=2M nodev "$mountpoint" || die "cannot mount hugetlbfs at $mountpoint"
  echo "hugetlbfs: mounted at $mountpoint"
fi
# A DIOS arena file is named dios-PID-...; one whose process is gone (killed,
# or a benchmark process that exited without releasing its node) holds its
# pages until removed. Remove those, and only those.
hugetlbfs=$(awk '$3 == "hugetlbfs" {print $2; exit}' /proc/mounts)
removed=0
for file in "$hugetlbfs"/dios-[0-9]*-*; do
  [ -e "$file" ] || continue
  pid=${file##*/dios-}; pid=${pid%%-*}
  if ! kill -0 "$pid" 2>/dev/null && [ ! -d "/proc/$pid" ]; then rm -f "$file" && removed=$((removed + 1)); fi
done
[ "$removed" -eq 0 ] || echo "hugepages: removed $removed arena file(s) of DIOS processes that are gone"
grep -E '^HugePages_(Total|Free)' /proc/meminfo | sed 's/^/hugepages: /'
