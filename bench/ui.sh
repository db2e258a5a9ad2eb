#!/usr/bin/env bash
# First-page times of the web UI on a large store: 10,000 snapshots, and a
# folder of 100,000 entries (issue 11 asks for under 200 ms). Measured with
# curl against `kast ui`: the first request after start, then two more. The
# local cache (index) lives in $data/ui-home and is kept from run to run, as
# a user's is; the very first run builds it (seconds, for 10k index deltas).
#   bench/ui.sh [SNAPSHOTS]      (default 10000; the store is kept in
#                                 $KAST_BENCH_DATA or /tmp/kast-bench-data)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
data=${KAST_BENCH_DATA:-/tmp/kast-bench-data}
store="$data/ui-store-$n"
cargo build --release -q -p kast -p kast-bench
if [ ! -d "$store" ]; then
  # Built under another name and renamed once whole: an interrupted build
  # is started again, never measured.
  rm -rf "$store.partial" "$store.src" "$store.cache" "$data/ui-home"
  target/release/kast-bench ui-store "$n" "$store.partial"
  mv "$store.partial" "$store"
fi
out=$(mktemp -d)
trap 'kill $(cat "$out/pid") 2>/dev/null || true; rm -rf "$out"' EXIT
mkdir -p "$data/ui-home"
KAST_PASSPHRASE=bench HOME="$data/ui-home" target/release/kast --store "$store" ui > "$out/url" 2> "$out/err" &
echo $! > "$out/pid"
while [ ! -s "$out/url" ]; do sleep 0.1; done
url=$(head -1 "$out/url")
base=${url%%/?token*}
curl -s -c "$out/jar" -o /dev/null "$url"
# -f: an error answer (a 404 is fast) fails the run instead of being timed.
time_of() { curl -fsS -b "$out/jar" -o /dev/null -w '%{time_total}' "$base$1"; }
printf '%-48s %8s %8s %8s\n' "request" "first" "second" "third"
for path in "/api/snapshots" "/snapshots" "/api/snapshots/latest/tree?path=many" \
            "/snapshots/latest/browse?path=many" "/snapshots/latest/browse?path=many&offset=99800" "/"; do
  printf '%-48s %7.0fms %7.0fms %7.0fms\n' "$path" \
    "$(echo "$(time_of "$path") * 1000" | bc)" "$(echo "$(time_of "$path") * 1000" | bc)" \
    "$(echo "$(time_of "$path") * 1000" | bc)"
done
