#!/usr/bin/env bash
# kast's S3 connector against restic's S3 backend, into the same 3-node
# Garage cluster on loopback (replication factor 3, as in the tests), on the
# 1 GiB benchmark tree: backup, then restore of that snapshot. Prints wall
# time and peak memory of each, the kast/restic ratios, and the S3 requests
# per second each tool sent (from Garage's own request counters).
# Both encrypt and compress with zstd (restic `auto`, kast zstd:3); kast
# opens its store with a saved key file (`kast key save-local`), as in
# bench/compare.sh, and restic with its password.
# Usage: bench/s3.sh [WORK_DIR]   (needs garage: scripts/setup; restic: apt)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/kast-s3-bench}
rm -rf "$work" && mkdir -p "$work"

cargo build --release -q -p kast -p kast-bench
kast=$PWD/target/release/kast
tree=$(target/release/kast-bench tree)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rpc_secret=$(openssl rand -hex 32)
s3_ports=()
for node in 0 1 2; do
  d=$work/node$node; mkdir -p "$d"
  rpc=$(free_port); s3=$(free_port); s3_ports+=("$s3")
  cat > "$d/garage.toml" <<CONF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$rpc_secret"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
CONF
  RUST_LOG=warn,garage_api_common=info garage -c "$d/garage.toml" server > "$d/log" 2>&1 &
done
trap 'pkill -f "$work/node.*/garage.toml" || true' EXIT
g() { garage -c "$work/node0/garage.toml" "$@"; }
for node in 0 1 2; do  # each node makes its key when it first starts
  for _ in $(seq 100); do
    garage -c "$work/node$node/garage.toml" node id -q > /dev/null 2>&1 && break; sleep 0.2
  done
done
for node in 1 2; do
  g node connect "$(garage -c "$work/node$node/garage.toml" node id -q)" > /dev/null
done
for node in 0 1 2; do
  id=$(garage -c "$work/node$node/garage.toml" node id -q)
  g layout assign -z "dc$node" -c 10G "${id:0:16}" > /dev/null
done
g layout apply --version 1 > /dev/null
g bucket create kast > /dev/null
key=$(g key create bench)
export AWS_ACCESS_KEY_ID=$(awk '/Key ID:/ {print $3}' <<< "$key")
export AWS_SECRET_ACCESS_KEY=$(awk '/Secret key:/ {print $3}' <<< "$key")
export AWS_DEFAULT_REGION=garage
g bucket allow --read --write --owner kast --key bench > /dev/null

# S3 requests served by the whole cluster so far (each node logs every
# request it receives at info level).
requests() {
  cat "$work"/node*/log | grep -cE ' (GET|HEAD|PUT|POST|DELETE) /' || true
}
# `counted NAME COMMAND...`: measure, then the requests/s of that run.
counted() {
  local before after; before=$(requests)
  measure "$@"
  after=$(requests)
  local secs; secs=$(eval echo "\$t_${1//[^a-z]/_}")
  awk -v n=$((after - before)) -v s="$secs" \
    'BEGIN { printf "%-34s %7d requests, %.0f/s\n", "", n, n / s }'
}

export KAST_PASSPHRASE=bench RESTIC_PASSWORD=bench
source bench/measure.sh
$kast plugin list > /dev/null  # warm the compiled-plugin cache: a one-time cost
echo "1 GiB tree: $tree ($(du -sh "$tree" | cut -f1)), Garage on 127.0.0.1:${s3_ports[*]}"

kast_url="s3+http://127.0.0.1:${s3_ports[0]}/kast/kast"
restic_repo="s3:http://127.0.0.1:${s3_ports[0]}/kast/restic"
$kast --store "$kast_url" -q create > /dev/null
$kast --store "$kast_url" -q key save-local > /dev/null
restic -q -r "$restic_repo" init > /dev/null
counted "restic backup" restic -q -r "$restic_repo" backup "$tree"
counted "kast backup" $kast --store "$kast_url" -q backup "$tree"
# Restores read through another node.
kast_url2="s3+http://127.0.0.1:${s3_ports[1]}/kast/kast"
restic_repo2="s3:http://127.0.0.1:${s3_ports[1]}/kast/restic"
counted "restic restore" restic -q -r "$restic_repo2" restore latest --target "$work/restic-out"
counted "kast restore" $kast --store "$kast_url2" -q restore latest --to "$work/kast-out"
awk -v a="$t_kast_backup" -v b="$t_restic_backup" 'BEGIN { printf "backup:  kast / restic = %.2f\n", a / b }'
awk -v a="$t_kast_restore" -v b="$t_restic_restore" 'BEGIN { printf "restore: kast / restic = %.2f\n", a / b }'
du -sh "$work/restic-out" "$work/kast-out"
$kast --store "$kast_url" -q key forget-local > /dev/null
rm -rf "$work"
