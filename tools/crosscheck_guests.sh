#!/usr/bin/env bash
# Crosscheck every guest in guests/bin/ under the conventions of guests/README.md
# (environment cleared except VMJIT_GUEST=1, a fresh empty working directory, arguments
# and stdin from guests/expected/), with any further vmjit options given:
#
#   cargo build --release -p vmjit
#   tools/crosscheck_guests.sh                           # the default JIT
#   tools/crosscheck_guests.sh --cache-size 64K          # constant eviction
#   tools/crosscheck_guests.sh --tier2-threshold 100     # tier 2 made aggressive
#
# One line per guest: stdout and exit code as recorded (ok/FAIL), divergences reported,
# wall and user time; the report (vmjit's stderr) after any failure. Exits 1 if any
# guest failed. VMJIT=path/to/vmjit selects another binary.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
vmjit=${VMJIT:-$root/target/release/vmjit}
g=$root/guests
failed=0
for bin in "$g"/bin/*; do
  n=$(basename "$bin")
  args=()
  [ -f "$g/expected/$n.args" ] && mapfile -t args < "$g/expected/$n.args"
  stdin=/dev/null
  [ -f "$g/expected/$n.stdin" ] && stdin=$g/expected/$n.stdin
  d=$(mktemp -d)
  (cd "$d" && env -i VMJIT_GUEST=1 /usr/bin/time -o "$d.time" -f "%e %U" \
    "$vmjit" run --crosscheck "$@" "$bin" "${args[@]}" < "$stdin" > "$d.out" 2> "$d.err")
  code=$?
  read -r wall user < <(tail -1 "$d.time")
  ok=ok
  cmp -s "$d.out" "$g/expected/$n.stdout" && [ "$code" = "$(cat "$g/expected/$n.exit")" ] || ok=FAIL
  div=$(grep -c "diverged after" "$d.err")
  printf "%-10s %-4s exit %3s  divergences %s  %6.2f s wall  %6.2f s user\n" \
    "$n" "$ok" "$code" "$div" "$wall" "$user"
  if [ "$ok" = FAIL ] || [ "$div" != 0 ]; then
    failed=1
    sed 's/^/    | /' "$d.err"
  fi
  rm -rf "$d" "$d.out" "$d.err" "$d.time"
done
exit $failed
