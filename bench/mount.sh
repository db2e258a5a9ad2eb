#!/usr/bin/env bash
# kast mount against kast restore, on one store: `cp -a` of a 1 GiB file
# and of a 20,000-file folder out of the mount against `kast restore` of
# the same; the time to open (and read) one file in a folder of 100,000
# entries six levels down, on a fresh mount and again; and the mount's
# peak memory while it is read. Page cache dropped before each timed step.
#
# Usage: bench/mount.sh [WORK_DIR]   (default /tmp/kast-mount-bench; ~3 GB)
# Results: a table on stdout and bench/results/MOUNT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/kast-mount-bench}
cargo build --release -q -p kast
kast=$PWD/target/release/kast
export HOME=$work/home KAST_PASSPHRASE=bench
mnt=$work/mnt
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt"; true; }
trap cleanup EXIT
cleanup
rm -rf "$work" && mkdir -p "$HOME" "$mnt"
src=$work/src
store=$work/store

echo "== making the data"
mkdir -p "$src/one" "$src/many" "$src/a/b/c/d/e/wide"
head -c 1G /dev/urandom > "$src/one/big.bin"
python3 - "$src" <<'EOF'
import os, random, sys
src = sys.argv[1]
rng = random.Random(7)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
# 20,000 files in 200 folders, 1 to 40 KiB each: half text, half random.
for i in range(20_000):
    d = os.path.join(src, "many", f"d{i // 100:03}")
    os.makedirs(d, exist_ok=True)
    size = rng.randint(1024, 40 * 1024)
    if i % 2:
        data = os.urandom(size)
    else:
        data = b" ".join(rng.choice(words) for _ in range(size // 6))[:size]
    with open(os.path.join(d, f"f{i:05}.dat"), "wb") as f:
        f.write(data)
# 100,000 small files in one folder, six levels down.
wide = os.path.join(src, "a/b/c/d/e/wide")
for i in range(100_000):
    with open(os.path.join(wide, f"entry-{i:06}.txt"), "wb") as f:
        f.write(b"entry %d\n" % i)
EOF

"$kast" -q -s "$store" create
# The key-file mode (as jobs and the agent use): no Argon2id per command.
"$kast" -q -s "$store" key save-local
"$kast" -q -s "$store" backup "$src/one" "$src/many" "$src/a"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Runs "$@" with the page cache dropped; prints "seconds peak_KiB".
timed() { drop; /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null; cat "$work/time"; }

# Mounts, runs "$@" once, prints "seconds mount_peak_KiB", unmounts.
mounted() {
  drop
  "$kast" -q -s "$store" mount "$mnt" 2>"$work/mount.log" &
  local pid=$!
  while [ ! -d "$mnt/ids" ]; do sleep 0.05; done
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  local peak
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid"
  echo "$(echo "$end - $start" | bc) $peak"
}

row() { printf '| %s | %.3f | %s |\n' "$1" "$(echo "$2" | cut -d' ' -f1)" "$(( $(echo "$2" | cut -d' ' -f2) / 1024 ))"; }

out=$work/out
results=bench/results/MOUNT.md
{
  echo "# kast mount against kast restore"
  echo
  echo "\`bench/mount.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores; page cache dropped before each step. Memory is the peak RSS of the \`kast restore\` process, or of the \`kast mount\` process over the whole step."
  echo
  echo "| step | wall (s) | peak memory (MiB) |"
  echo "| --- | --- | --- |"
  rm -rf "$out"; row "kast restore of a 1 GiB file" "$(timed "$kast" -q -s "$store" restore latest --source "$src/one" --to "$out")"
  rm -rf "$out"; row "cp -a of it out of the mount" "$(mounted cp -a "$mnt/latest/one/big.bin" "$out")"
  rm -rf "$out"; row "kast restore of 20,000 files (200 folders)" "$(timed "$kast" -q -s "$store" restore latest --source "$src/many" --to "$out")"
  rm -rf "$out"; row "cp -a of them out of the mount" "$(mounted cp -a "$mnt/latest/many" "$out")"
  # One mount: the first file opened deep in the wide folder (its 100k-entry
  # tree read and decrypted), a second one, then a listing of the folder.
  drop
  "$kast" -q -s "$store" mount "$mnt" 2>"$work/mount.log" &
  pid=$!
  while [ ! -d "$mnt/ids" ]; do sleep 0.05; done
  wide=$mnt/latest/a/b/c/d/e/wide
  t0=$(date +%s.%N); cat "$wide/entry-077777.txt" >/dev/null
  t1=$(date +%s.%N); cat "$wide/entry-012345.txt" >/dev/null
  t2=$(date +%s.%N); n=$(ls -f "$wide" | wc -l)
  t3=$(date +%s.%N)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid"
  row "open + read a file in a 100k-entry folder 6 levels down, fresh mount" "$(echo "$t1 - $t0" | bc) $peak"
  row "open + read another file of that folder" "$(echo "$t2 - $t1" | bc) $peak"
  row "ls -f of that folder ($n names)" "$(echo "$t3 - $t2" | bc) $peak"
  rm -rf "$out"
} | tee "$results"
