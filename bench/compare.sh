#!/usr/bin/env bash
# kast side by side with restic, rustic, borg and bupstash on the same data,
# in one run, tools alternating, REPS repetitions; medians and kast/peer
# ratios go to bench/results/LATEST.md, every measurement to a CSV beside it.
#
# Datasets (deterministic, made once by kast-bench under target/bench-data):
#   large: 1 GiB of incompressible data in 4 files of 256 MiB
#   small: 100,000 files of 1-20 KiB (about 1 GiB), half text, half binary
#   text:  200,000 prose-like text files of 0.5-5 KiB (about 550 MB)
# Steps: (a) fresh backup of large, (b) fresh backup of small and of text,
# (c) second backup of small after 1 % of its files changed, (d) third
# backup with nothing changed, (e) full restore of each. Page cache is
# dropped before every step (when root). Measured: wall time, user+sys CPU
# and peak RSS (/usr/bin/time), store size after each step.
#
# Restores are written to a journalled ext4 of their own (a loop-mounted
# image, when root), as a user's disk would be. Without a journal, ext4
# skips every inode freed in the last 60-300 s when it allocates one, so a
# restore run soon after a large deletion (the previous step's outputs)
# pays for it: the fastest tool, whose backups leave the least time since
# that deletion, paid most. Elsewhere the restores go to WORK_DIR, and
# LATEST.md says which.
#
# Settings, each tool's default compression (all zstd; all encrypt):
#   kast      zstd:3 (its default); key-file mode (`kast key save-local`),
#             no passphrase KDF
#   kast-pass the same store opened with the passphrase (Argon2id,
#             m = 256 MiB) on every command: what a run without a saved key costs
#   bupstash  zstd:3 (its default); key file (its only mode)
#   restic    --compression auto (zstd, its default); password
#   rustic    zstd level 3 (its default), extra verify off; password
#   borg      --compression zstd,3, repokey-blake2; passphrase
#
# Usage: bench/compare.sh [REPS] [WORK_DIR]   (default 3, /tmp/kast-compare)
# TOOLS="kast bupstash" bench/compare.sh 1 runs only those tools (a quick
# check of one ratio; the published table uses all of them).
# Installs the peers when missing: restic and borgbackup from Debian, rustic
# and bupstash with `cargo install --locked` (kept in ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
work=${2:-/tmp/kast-compare}
umount "$work/restores" 2> /dev/null || true
rm -rf "$work" && mkdir -p "$work"
results=bench/results
mkdir -p "$results"

read -r -a tools <<< "${TOOLS:-kast kast-pass bupstash restic rustic borg}"
wanted() { [[ " ${tools[*]} " == *" $1 "* ]]; }

need_apt=()
wanted restic && ! command -v restic > /dev/null && need_apt+=(restic)
wanted borg && ! command -v borg > /dev/null && need_apt+=(borgbackup)
wanted bupstash && ! dpkg-query -W -f='${Status}' libsodium-dev 2>/dev/null | grep -q "install ok" &&
  need_apt+=(libsodium-dev pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq "${need_apt[@]}"
fi
if wanted bupstash && ! command -v bupstash > /dev/null; then cargo install --locked bupstash; fi
if wanted rustic && ! command -v rustic > /dev/null; then cargo install --locked rustic-rs; fi

# Where restores land (see the top).
out=$work
if [ "$(id -u)" -eq 0 ] && command -v mkfs.ext4 > /dev/null; then
  truncate -s 16G "$work/restores.img"
  mkfs.ext4 -q -F "$work/restores.img"
  mkdir -p "$work/restores"
  if mount -o loop "$work/restores.img" "$work/restores" 2> /dev/null; then
    out=$work/restores
    trap 'umount "$work/restores"' EXIT
  fi
fi

cargo build --release -q -p kast -p kast-bench
kast=$PWD/target/release/kast
large=$(target/release/kast-bench large)
small=$(target/release/kast-bench small)
text=$(target/release/kast-bench text)
export HOME=$work/home KAST_PASSPHRASE=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export RUSTIC_PASSWORD=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
mkdir -p "$HOME"
wanted bupstash && bupstash new-key -o "$work/bupstash.key"
export BUPSTASH_KEY=$work/bupstash.key

# One tool's commands: init REPO, backup REPO SRC, restore REPO DEST.
init() {
  local tool=$1 repo=$2
  case $tool in
    kast) $kast -s "$repo" -q create && $kast -s "$repo" -q key save-local ;;
    kast-pass) $kast -s "$repo" -q create ;;
    restic) restic -q -r "$repo" init ;;
    rustic) rustic -r "$repo" init --set-extra-verify false ;;
    borg) borg init -e repokey-blake2 "$repo" ;;
    bupstash) bupstash init -r "$repo" ;;
  esac > "$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
}
backup() {
  local tool=$1 repo=$2 src=$3
  case $tool in
    kast | kast-pass) $kast -s "$repo" -q backup "$src" ;;
    restic) restic -q -r "$repo" backup --compression auto "$src" ;;
    rustic) rustic -r "$repo" backup "$src" ;;
    borg) borg create --compression zstd,3 "$repo::$(date +%s%N)" "$src" ;;
    bupstash) bupstash put -q -r "$repo" "$src" ;;
  esac
}
restore() {
  local tool=$1 repo=$2 dest=$3
  mkdir -p "$dest"
  case $tool in
    kast | kast-pass) $kast -s "$repo" -q restore latest --to "$dest" ;;
    restic) restic -q -r "$repo" restore latest --target "$dest" ;;
    rustic) rustic -r "$repo" restore latest "$dest" ;;
    borg) (cd "$dest" && borg extract "$repo::$(borg list --last 1 --short "$repo")") ;;
    bupstash) bupstash get -r "$repo" "id=$(bupstash list -r "$repo" --format=jsonl1 | tail -1 |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" | tar -x -C "$dest" ;;
  esac
}

export kast
export -f backup restore
csv=$results/LATEST.csv
echo "rep,tool,step,wall_s,cpu_s,peak_rss_kib,store_bytes" > "$csv"
# `step REP TOOL NAME REPO COMMAND...`: one measured step, one CSV row.
step() {
  local rep=$1 tool=$2 name=$3 repo=$4; shift 4
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  # Through bash, which runs the tool's function (peak memory is the
  # largest process's, CPU time all of them).
  if ! /usr/bin/time -f "%e %U %S %M" -o "$work/time" bash -c '"$@"' step "$@" \
    > "$work/out" 2> "$work/err"; then
    echo "$tool $name failed:" >&2; cat "$work/err" >&2; exit 1
  fi
  local secs user sys kib
  read -r secs user sys kib < <(tail -1 "$work/time")
  local size; size=$(du -sb "$repo" | cut -f1)
  echo "$rep,$tool,$name,$secs,$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }'),$kib,$size" >> "$csv"
  printf '%-9s %-22s %7.2f s %8d KiB %6d MiB\n' "$tool" "$name" "$secs" "$kib" $((size >> 20))
}

for rep in $(seq "$reps"); do
  # Rotate the order each repetition, so no tool always runs first.
  order=("${tools[@]:rep % ${#tools[@]}}" "${tools[@]:0:rep % ${#tools[@]}}")
  for tool in "${order[@]}"; do
    echo "== repetition $rep: $tool"
    repo=$work/repo-$tool
    rm -rf "$repo" "$out/out-"*; init "$tool" "$repo"
    step "$rep" "$tool" "a large: backup" "$repo" backup "$tool" "$repo" "$large"
    step "$rep" "$tool" "e large: restore" "$repo" restore "$tool" "$repo" "$out/out-large"
    rm -rf "$repo" "$out/out-"*; init "$tool" "$repo"
    step "$rep" "$tool" "b small: backup" "$repo" backup "$tool" "$repo" "$small"
    target/release/kast-bench change "$small"
    step "$rep" "$tool" "c small: 1% changed" "$repo" backup "$tool" "$repo" "$small"
    step "$rep" "$tool" "d small: unchanged" "$repo" backup "$tool" "$repo" "$small"
    target/release/kast-bench unchange "$small"
    step "$rep" "$tool" "e small: restore" "$repo" restore "$tool" "$repo" "$out/out-small"
    rm -rf "$repo" "$out/out-"*; init "$tool" "$repo"
    step "$rep" "$tool" "b text: backup" "$repo" backup "$tool" "$repo" "$text"
    step "$rep" "$tool" "e text: restore" "$repo" restore "$tool" "$repo" "$out/out-text"
    rm -rf "$repo" "$out/out-"*
  done
done

python3 bench/report.py "$csv" > "$results/LATEST.md"
if [ "$out" = "$work/restores" ]; then
  echo "Restores were written to a journalled ext4 of their own (a loop-mounted image)." \
    >> "$results/LATEST.md"
else
  echo "Restores were written to $(findmnt -n -o FSTYPE -T "$work") under $work." \
    >> "$results/LATEST.md"
fi
cat "$results/LATEST.md"
if [ "$out" = "$work/restores" ]; then umount "$work/restores" && trap - EXIT; fi
rm -rf "$work"
