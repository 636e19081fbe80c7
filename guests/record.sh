#!/usr/bin/env bash
# Records guests/expected/<name>.stdout and <name>.exit by running guests/bin/<name> under
# qemu-riscv64 with the conventions every runner of the guests applies (see README.md):
#   - environment cleared except exactly VMJIT_GUEST=1
#   - working directory a fresh empty temporary directory (removed afterwards)
#   - arguments from expected/<name>.args (one per line), if that file exists
#   - stdin from expected/<name>.stdin if it exists, else /dev/null
#   - exit code as a decimal number; a guest killed by signal N is recorded as 128+N
#   - the dynamically linked guests (the Makefile's DYN_PROGS) run with the riscv64
#     sysroot: qemu-riscv64 -L "$SYSROOT" (default /usr/riscv64-linux-gnu). qemu loads
#     their ELF interpreter /lib/ld-linux-riscv64-lp64d.so.1 from there and looks every
#     absolute path the guest opens up there first; without -L it would look for the
#     interpreter on the host. (-L, not QEMU_LD_PREFIX: the guest inherits qemu's
#     environment, which must stay exactly VMJIT_GUEST=1.)
# stderr is not recorded (it is shown here, prefixed, so a recording can be checked).
#
# Usage: guests/record.sh [--check] [NAME...]   (default: every recorded guest, the
#   Makefile's PROGS; guests in its UNRECORDED list check their own output)
#   --check   run the same way but compare with the recorded files instead of writing
#             them; exits 1 if any guest differs (e.g. to confirm a guest is deterministic)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
qemu="${QEMU:-qemu-riscv64}"
sysroot="${SYSROOT:-/usr/riscv64-linux-gnu}"
command -v "$qemu" >/dev/null 2>&1 || { echo "record.sh: $qemu not found" >&2; exit 1; }
dynamic=" $(make -s -C "$here" print-dynamic) "

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
if [ "$#" -eq 0 ]; then
  set -- $(make -s -C "$here" print-recorded)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mismatches=0

for name in "$@"; do
  bin="$here/bin/$name"
  [ -x "$bin" ] || { echo "record.sh: $bin missing (run make first)" >&2; exit 1; }
  args=()
  if [ -f "$here/expected/$name.args" ]; then
    mapfile -t args < "$here/expected/$name.args"
  fi
  stdin=/dev/null
  [ -f "$here/expected/$name.stdin" ] && stdin="$here/expected/$name.stdin"
  qemu_args=()
  if [[ "$dynamic" == *" $name "* ]]; then
    [ -f "$sysroot/lib/ld-linux-riscv64-lp64d.so.1" ] ||
      { echo "record.sh: $name needs the riscv64 sysroot $sysroot (libc6-riscv64-cross)" >&2; exit 1; }
    qemu_args=(-L "$sysroot")
  fi

  cwd="$(mktemp -d)"
  out="$scratch/$name.stdout"
  err="$scratch/$name.stderr"
  set +e
  # The subshell keeps the cd local; a guest killed by a signal makes qemu-riscv64 die
  # of the same signal, which bash reports as 128+N. The outer braces send bash's own
  # "Segmentation fault" job report to /dev/null; the guest's stderr goes to $err.
  { (cd "$cwd" && exec env -i VMJIT_GUEST=1 "$qemu" "${qemu_args[@]}" "$bin" "${args[@]}") \
      < "$stdin" > "$out" 2> "$err"; } 2>/dev/null
  code=$?
  set -e
  rm -rf "$cwd"

  if [ "$check" -eq 1 ]; then
    if cmp -s "$out" "$here/expected/$name.stdout" &&
       [ "$code" = "$(cat "$here/expected/$name.exit")" ]; then
      echo "same $name: exit $code"
    else
      echo "DIFFERENT $name: exit $code (recorded $(cat "$here/expected/$name.exit"))"
      diff "$here/expected/$name.stdout" "$out" | head -10 || true
      mismatches=$((mismatches + 1))
    fi
  else
    cp "$out" "$here/expected/$name.stdout"
    echo "$code" > "$here/expected/$name.exit"
    echo "recorded $name: exit $code, $(wc -c < "$out") bytes of stdout"
    sed 's/^/    stderr: /' "$err" | head -5
  fi
done

[ "$mismatches" -eq 0 ] || { echo "record.sh: $mismatches guest(s) differ" >&2; exit 1; }
