#!/usr/bin/env bash
# Streams and database dumps: the peak memory of `kast backup
# --from-command` over a multi-GiB stream, and how much a second dump of
# a PostgreSQL database re-adds after 1 % of its rows change, for each
# pg_dump format (plain, custom compressed, custom uncompressed). Two
# kinds of change: 1 % of rows updated at random, and 1 % new rows.
#
# Usage: bench/databases.sh [ROWS] [STREAM_GIB] [WORK_DIR]
#   (default 2000000 4 /tmp/kast-db-bench). Needs Debian's postgresql.
# Results: a table on stdout and bench/results/DATABASES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000000}
gib=${2:-4}
work=${3:-/tmp/kast-db-bench}
cargo build --release -q -p kast
kast=$PWD/target/release/kast
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$work" && mkdir -p "$work/home"
export HOME=$work/home KAST_PASSPHRASE=bench
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
as_pg "$pgbin/initdb" -A trust -U postgres -D "$work/data" --no-sync >/dev/null
as_pg "$pgbin/postgres" -D "$work/data" -k "$work" -c listen_addresses= -c fsync=off 2>"$work/pg.log" &
pg=$!
# runuser does not pass SIGTERM on: the server is stopped by its own tool.
trap 'as_pg "$pgbin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1; wait $pg 2>/dev/null || true' EXIT
export PGHOST=$work PGUSER=postgres PATH=$pgbin:$PATH
until pg_isready -q; do sleep 0.2; done
createdb app
psql -X -q app -c "CREATE TABLE t (i int PRIMARY KEY, name text, note text, at timestamptz);
  INSERT INTO t SELECT g, md5(g::text), repeat(md5((g * 7)::text), 3), '2020-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, $rows) g;"

results=bench/results/DATABASES.md
row() { printf '| %s | %s | %s | %s |\n' "$@"; }
added() { python3 -c 'import json,sys; s=json.load(sys.stdin)["snapshots"][0]; print(s["logical_bytes"], s["bytes_added"])'; }
mib() { echo "scale=1; $1 / 1048576" | bc; }
{
  echo "# Streams and database dumps"
  echo
  echo "\`bench/databases.sh $rows $gib\` on $(date -u +%Y-%m-%d), $(nproc) cores, key-file mode."
  echo
  store=$work/stream-store
  "$kast" -q -s "$store" create && "$kast" -q -s "$store" key save-local
  /usr/bin/time -f "%e %M" -o "$work/time" "$kast" -q -s "$store" backup --from-command big.bin -- \
    sh -c "openssl enc -aes-128-ctr -pass pass:kast -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c ${gib}G"
  read -r secs kib < "$work/time"
  echo "A ${gib} GiB stream (\`--from-command\`, incompressible): $secs s, peak memory $((kib / 1024)) MiB."
  echo
  echo "A table of $rows rows; the second dump after the change named, each format in a store of its own."
  echo
  echo "| change | format | dump (MiB) | second dump adds (MiB) |"
  echo "| --- | --- | --- | --- |"
  fmt_args() {
    case $1 in
      plain) ;;
      custom) echo -Fc ;;
      custom-Z0) echo -Fc -Z0 ;;
    esac
  }
  formats="plain custom custom-Z0"
  for change in update append; do
    # The first dump of each format, then one change, then the second dumps.
    for fmt in $formats; do
      store=$work/store-$change-$fmt
      "$kast" -q -s "$store" create && "$kast" -q -s "$store" key save-local
      # shellcheck disable=SC2046
      "$kast" -q -s "$store" backup --from-command app.dump -- pg_dump $(fmt_args $fmt) app
    done
    createdb -T app before
    case $change in
      update) psql -X -q app -c "UPDATE t SET note = md5(note) WHERE i % 100 = 37" ;;
      append) psql -X -q app -c "INSERT INTO t SELECT g, md5(g::text), repeat(md5((g * 7)::text), 3), now() FROM generate_series($rows + 1, $rows + $rows / 100) g" ;;
    esac
    for fmt in $formats; do
      store=$work/store-$change-$fmt
      # shellcheck disable=SC2046
      read -r size new < <("$kast" -s "$store" --json backup --from-command app.dump -- pg_dump $(fmt_args $fmt) app | added)
      row "1 % of rows $( [ $change = update ] && echo updated || echo appended)" "$fmt" "$(mib "$size")" "$(mib "$new")"
    done
    # Undone, so the next kind of change starts from the same table.
    dropdb app && psql -X -q postgres -c "ALTER DATABASE before RENAME TO app"
  done
} | tee "$results"
