#!/usr/bin/env python3
"""Per-translation profile of a vmjit run: `perf report` for JIT code.

perf attributes samples in translated code to the code cache's memfd mapping
(`memfd:codecache`), not to `/tmp/perf-<pid>.map`, and the cache reuses code memory when
a translation is replaced or evicted, so an address can belong to several map lines.
This resolves each sample to the latest line (the map is written in time order) whose
range covers it, and prints the share of samples per translation (`guest_<pc>_t<tier>`,
tier 0 = baseline, 1 = Cranelift block, 2 = region), per tier, and per host symbol.

Usage:
  perf record -F 20000 -o perf.data -- target/release/vmjit run --perf-map PROG
  python3 tools/jitprof.py perf.data /tmp/perf-<pid>.map [TOP]
"""
import bisect
import collections
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    data, map_file = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    entries = []
    with open(map_file) as f:
        for line_no, line in enumerate(f):
            addr, size, name = line.split()
            entries.append((int(addr, 16), int(size, 16), line_no, name))
    entries.sort()
    starts = [e[0] for e in entries]
    longest = max((e[1] for e in entries), default=0)
    out = subprocess.run(['perf', 'script', '-i', data, '-F', 'ip,sym,dso'],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    tiers = collections.Counter()
    total = 0
    for line in out.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        total += 1
        ip = int(parts[0], 16)
        rest = parts[1] if len(parts) > 1 else ''
        if 'memfd' not in rest:
            counts[rest.split('(')[0].strip()[:90]] += 1
            continue
        # The latest line covering ip; only lines starting within `longest` below it can.
        best = None
        i = bisect.bisect_right(starts, ip) - 1
        while i >= 0 and entries[i][0] + longest > ip:
            start, size, line_no, name = entries[i]
            if start + size > ip and (best is None or line_no > best[2]):
                best = entries[i]
            i -= 1
        name = best[3] if best else 'unknown'
        counts['JIT ' + name] += 1
        tiers[name.rsplit('_', 1)[-1] if best else 'unknown'] += 1
    if total == 0:
        sys.exit('no samples')
    print('translated code by tier: ' + ', '.join(
        f'{t} {100 * n / total:.1f}%' for t, n in sorted(tiers.items())))
    for name, n in counts.most_common(top):
        print(f'{100 * n / total:6.2f}% {name}')


if __name__ == '__main__':
    main()
