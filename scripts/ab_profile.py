#!/usr/bin/env python3
"""Two tern binaries side by side: `tern profile` with the same arguments, alternating (old, new,
old, ...) for a number of rounds, then the medians of GPU busy and of each kernel's time per
step, summed over the step's layers (or, with --layers, kernel by kernel and layer by layer).
Speed on a software driver moves between runs, so a change is judged by these medians, never
by one run.

    git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
    cargo build --release
    python3 scripts/ab_profile.py /tmp/old/target/release/tern target/release/tern --rounds 5 -- \\
        --arch resnet20 --quant ttq --channels 3 --size 32 --batch-size 32 --steps 10
"""
import argparse
import collections
import re
import statistics
import subprocess
import sys


def profile(binary, args):
    """GPU busy (ms per step) and {(kernel, layer): ms per step} of one `tern profile` run."""
    out = subprocess.run([binary, "profile", *args], capture_output=True, text=True)
    busy = re.search(r"GPU busy ([\d.]+) ms", out.stdout)
    if out.returncode != 0 or busy is None:
        sys.exit(f"{binary} profile failed:\n{out.stdout}{out.stderr}")
    steps = int(re.search(r"^(\d+) profiled step", out.stdout, re.M).group(1))
    kernels = {}
    for line in out.stdout.splitlines():
        f = line.split()
        # kernel, layer, calls, total ms, ...
        if len(f) > 4 and f[2].isdigit() and "/" in f[0]:
            kernels[(f[0], f[1])] = float(f[3]) / steps
    return float(busy.group(1)), kernels


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--layers", action="store_true", help="kernel by kernel and layer by layer")
    argv = sys.argv[1:]
    # `tern profile`'s arguments follow `--`.
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    args = argv[cut + 1:]
    busy = {a.old: [], a.new: []}
    times = {a.old: collections.defaultdict(list), a.new: collections.defaultdict(list)}
    for r in range(a.rounds):
        for b in (a.old, a.new):
            gpu, kernels = profile(b, args)
            busy[b].append(gpu)
            sums = collections.Counter()
            for (kernel, layer), ms in kernels.items():
                sums[(kernel, layer) if a.layers else (kernel, "")] += ms
            for k, ms in sums.items():
                times[b][k].append(ms)
        print(f"round {r + 1}: GPU busy {busy[a.old][-1]:.1f} → {busy[a.new][-1]:.1f} ms", flush=True)
    med = lambda v: statistics.median(v) if v else 0.0
    print(f"\nmedians of {a.rounds} rounds, ms per step (old → new)")
    print(f"GPU busy: {med(busy[a.old]):.2f} → {med(busy[a.new]):.2f}")
    keys = sorted(set(times[a.old]) | set(times[a.new]), key=lambda k: (-med(times[a.old][k]), k))
    for k in keys:
        name = f"{k[0]} {k[1]}".strip()
        print(f"  {name:60s} {med(times[a.old][k]):8.2f} → {med(times[a.new][k]):8.2f}")


if __name__ == "__main__":
    main()
