# Sourced by the bench scripts: `measure NAME COMMAND...` runs COMMAND once,
# prints its wall time, CPU time (user + system) and peak memory, and keeps
# the seconds in $t_NAME (NAME lowercased, other characters as _) for the
# ratios.
measure() {
  local name=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > /dev/null
  local secs user sys kib
  read -r secs user sys kib < "$work/time"
  printf '%-34s %7.2f s %7.2f s CPU %8d KiB\n' "$name" "$secs" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$kib"
  eval "t_${name//[^a-z]/_}=$secs"
}
