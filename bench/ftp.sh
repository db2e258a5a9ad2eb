#!/usr/bin/env bash
# kast over FTP against lftp's `mirror` on loopback, on the 1 GiB benchmark
# tree, with a temporary vsftpd (its own config; the test user's password
# exists only in its private mount namespace, as in the tests):
#   download: lftp mirror from the server  vs  kast backup of an ftp:// source
#   upload:   lftp mirror -R to the server vs  kast backup into an ftp:// store
# Prints wall time and peak memory of each, and ratios.
# Usage: bench/ftp.sh [WORK_DIR]   (needs root and lftp: apt install lftp)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/kast-ftp-bench}
rm -rf "$work" && mkdir -p "$work"/{empty,pam.d}

cargo build --release -q -p kast -p kast-bench
kast=target/release/kast
tree=$(target/release/kast-bench tree)

user=$(id -un)
password="kast bench password"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
low=$((30000 + RANDOM % 20000)); high=$((low + 50))
hash=$(openssl passwd -6 "$password")
awk -F: -v u="$user" -v h="$hash" 'BEGIN{OFS=":"} $1==u{$2=h} {print}' /etc/shadow > "$work/shadow"
printf 'auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n' > "$work/pam.d/kast-bench-ftp"
cat > "$work/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$port
background=NO
local_enable=YES
write_enable=YES
local_umask=022
anonymous_enable=NO
pam_service_name=kast-bench-ftp
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$work/empty
pasv_min_port=$low
pasv_max_port=$high
pasv_address=127.0.0.1
xferlog_enable=NO
vsftpd_log_file=$work/vsftpd.log
CONF
unshare -m sh -c "mount --bind $work/shadow /etc/shadow && mount --bind $work/pam.d /etc/pam.d && exec /usr/sbin/vsftpd $work/vsftpd.conf" &
server=$!
trap 'pkill -f "$work/vsftpd.conf" || true' EXIT
sleep 0.5

echo "$password" > "$work/password"
url() { echo "ftp://$user@127.0.0.1:$port$1?password_file=$work/password&data_ports=$low-$high"; }
lftp_cmd=(lftp -u "$user,$password" -p "$port" 127.0.0.1 -e)
export KAST_PASSPHRASE=bench
source bench/measure.sh

$kast plugin list > /dev/null  # warm the compiled-plugin cache: a one-time cost
echo "1 GiB tree: $tree ($(du -sh "$tree" | cut -f1)), vsftpd on 127.0.0.1:$port"
measure "lftp mirror download" "${lftp_cmd[@]}" "mirror $tree $work/lftp-down; quit"
$kast --store "$work/local-store" -q create >/dev/null
measure "kast backup from ftp source" $kast --store "$work/local-store" -q backup "$(url "$tree")"
measure "lftp mirror upload" "${lftp_cmd[@]}" "mirror -R $tree $work/lftp-up; quit"
$kast --store "$(url "$work/remote-store")" -q create >/dev/null
measure "kast backup into ftp store" $kast --store "$(url "$work/remote-store")" -q backup "$tree"
awk -v a="$t_kast_backup_from_ftp_source" -v b="$t_lftp_mirror_download" \
  'BEGIN { printf "download: kast / lftp = %.2f\n", a / b }'
awk -v a="$t_kast_backup_into_ftp_store" -v b="$t_lftp_mirror_upload" \
  'BEGIN { printf "upload:   kast / lftp = %.2f\n", a / b }'
