#!/usr/bin/env bash
# kast at scale: a store of FILES × GENERATIONS blobs (50 million by
# default) and SNAPSHOTS snapshots (10,000), built through the engine from
# a synthetic source of FILES files (5 million) that needs no disk
# (`kast-bench scale-store`). Then each everyday operation, timed with its
# peak memory (/usr/bin/time): opening the store with a cold cache, an
# unchanged backup, ls of the latest snapshot, restore of one file, a walk
# of two whole snapshots (diff), check --fast, find across every snapshot,
# and maintenance after half
# the snapshots are removed. The goal: every one under 1 GiB of memory.
#
# Usage: bench/scale.sh [FILES] [GENERATIONS] [SNAPSHOTS] [WORK_DIR]
#   (default 5000000 10 10000 /tmp/kast-scale; about 10 GB of disk at the
#   default size; `bench/scale.sh 100000 4 200` is a quick look)
# Results: a table on stdout and bench/results/SCALE.md. KAST_SCALE_KEEP=1
# keeps the work directory (the store, HOME with the CLI's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-5000000}
generations=${2:-10}
snapshots=${3:-10000}
work=${4:-/tmp/kast-scale}
rm -rf "$work" && mkdir -p "$work"
cargo build --release -q -p kast -p kast-bench
kast=$PWD/target/release/kast
bench=$PWD/target/release/kast-bench
store=$work/store
export HOME=$work/home KAST_PASSPHRASE=bench
mkdir -p "$HOME"

echo "== building the store ($files files × $generations generations, $snapshots snapshots)"
/usr/bin/time -f "built in %e s, peak %M KiB" "$bench" scale-store "$store" "$files" "$generations" "$snapshots"

results=bench/results/SCALE.md
{
  echo "# kast at scale"
  echo
  echo "A store of $files files × $generations generations ($(du -sh "$store" | cut -f1) on disk) and $snapshots snapshots, made by \`bench/scale.sh $files $generations $snapshots\` on $(date -u +%Y-%m-%d). Page cache dropped before each step."
  echo
  echo "| operation | wall (s) | peak memory (MiB) |"
  echo "| --- | --- | --- |"
} > "$results"

# `measure NAME COMMAND...`: one row.
measure() {
  local name=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  if ! /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err"; then
    echo "$name failed:" >&2; cat "$work/err" >&2; exit 1
  fi
  local secs kib
  read -r secs kib < <(tail -1 "$work/time")
  printf '%-40s %8.2f s %8d MiB\n' "$name" "$secs" $((kib / 1024))
  echo "| $name | $secs | $((kib / 1024)) |" >> "$results"
}

latest=$(( generations - 1 ))
measure "open the store, cold cache (info)" "$kast" -s "$store" info
measure "open the store, warm cache (info)" "$kast" -s "$store" info
# The snapshot of generation G (the one-file backups came after the last).
id_of() {
  "$kast" -s "$store" --json ls --tag "gen$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'
}
newest=$(id_of "$latest")
before=$(id_of $(( latest > 0 ? latest - 1 : 0 )))
file=d$(printf %05d $(( files / 2000 )))/f$(printf %08d $(( files / 2 )))
measure "unchanged backup of $files files" "$bench" scale-backup "$store" "$files" "$latest"
measure "ls of a snapshot's root" "$kast" -s "$store" ls "$newest:"
measure "restore of one file" "$kast" -s "$store" restore "$newest:$file" --to "$work/one"
measure "walk two whole snapshots (diff)" "$kast" -s "$store" diff "$before" "$newest"
measure "check --fast" "$kast" -s "$store" check --fast
# find: every snapshot searched, each distinct folder read once.
measure "find one name in every snapshot" "$kast" -s "$store" find "${file##*/}"
measure "find --path-only '*77*' in every snapshot" "$kast" -s "$store" find --path-only '*77*'
measure "remove half the snapshots" "$bench" scale-forget "$store"
measure "maintenance" "$kast" -s "$store" maintenance
cat "$results"
[ -n "${KAST_SCALE_KEEP:-}" ] || rm -rf "$work"
