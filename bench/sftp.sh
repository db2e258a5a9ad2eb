#!/usr/bin/env bash
# kast over SFTP against OpenSSH's own scp (which speaks SFTP since 9.0) on
# loopback, on the 1 GiB benchmark tree:
#   download: scp -r from the server   vs  kast backup of an sftp:// source
#   upload:   scp -r to the server     vs  kast backup into an sftp:// store
# A temporary sshd runs in the foreground with its own keys; nothing of the
# system's is touched. Prints wall time and peak memory of each, and ratios.
# kast opens its stores with a saved key file (`kast key save-local`), as
# `kast job` does, so Argon2id's cost (about 0.6 s and 260 MiB) is not in
# the rows; the keys are forgotten again at the end.
# Usage: bench/sftp.sh [WORK_DIR]   (needs root for sshd, like the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/kast-sftp-bench}
rm -rf "$work" && mkdir -p "$work"

cargo build --release -q -p kast -p kast-bench
kast=target/release/kast
tree=$(target/release/kast-bench tree)

# A throwaway server.
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin yes
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" > "$work/known_hosts"
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$work/sshd_config" & sshd_pid=$!
trap 'kill $sshd_pid 2>/dev/null || true' EXIT
sleep 0.5

user=$(id -un)
ssh_opts=(-q -o BatchMode=yes -o UserKnownHostsFile="$work/known_hosts" -i "$work/id" -P "$port")
url() { echo "sftp://$user@127.0.0.1:$port$1?identity=$work/id&known_hosts=$work/known_hosts"; }
export KAST_PASSPHRASE=bench
source bench/measure.sh

$kast plugin list > /dev/null  # warm the compiled-plugin cache: a one-time cost
echo "1 GiB tree: $tree ($(du -sh "$tree" | cut -f1)), sshd on 127.0.0.1:$port"
measure "scp download" scp -r "${ssh_opts[@]}" "$user@127.0.0.1:$tree" "$work/scp-down"
$kast --store "$work/local-store" -q create >/dev/null
$kast --store "$work/local-store" -q key save-local >/dev/null
measure "kast backup from sftp source" $kast --store "$work/local-store" -q backup "$(url "$tree")"
measure "scp upload" scp -r "${ssh_opts[@]}" "$tree" "$user@127.0.0.1:$work/scp-up"
$kast --store "$(url "$work/remote-store")" -q create >/dev/null
$kast --store "$(url "$work/remote-store")" -q key save-local >/dev/null
measure "kast backup into sftp store" $kast --store "$(url "$work/remote-store")" -q backup "$tree"
$kast --store "$work/local-store" -q key forget-local >/dev/null
$kast --store "$(url "$work/remote-store")" -q key forget-local >/dev/null
awk -v a="$t_kast_backup_from_sftp_source" -v b="$t_scp_download" \
  'BEGIN { printf "download: kast / scp = %.2f\n", a / b }'
awk -v a="$t_kast_backup_into_sftp_store" -v b="$t_scp_upload" \
  'BEGIN { printf "upload:   kast / scp = %.2f\n", a / b }'
