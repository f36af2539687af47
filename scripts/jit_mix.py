#!/usr/bin/env python3
"""What llvmpipe's machine code spends a run's time on: samples a running `tern profile` with
perf, dumps the process with gcore, disassembles the JIT-compiled kernels that the samples fell
in (objdump on the core's memory) and prints the share of samples by kind of instruction, and how
many fused multiply-adds, multiplies and adds the sampled code holds.

    cargo build --release
    python3 scripts/jit_mix.py [--seconds 3] [--delay 8] [--ops N] [-- <tern profile arguments>]

Needs perf, gdb (gcore) and objdump (Debian: linux-perf, gdb, binutils). A timer sample lands
just after the instruction that held the core, so each sample is counted against the
instruction before its address. The default profile is ResNet-20 TTQ at batch 32; the delay
skips start-up and compilation.
"""
import argparse
import bisect
import collections
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = ["--arch", "resnet20", "--quant", "ttq", "--channels", "3", "--size", "32", "--batch-size", "32",
           "--steps", "60"]


def kind(text):
    """The kind of one disassembled x86 instruction (AT&T syntax)."""
    op = text.split()[0] if text else "?"
    if op.startswith(("vfmadd", "vfnmadd", "vfmsub", "vfnmsub")):
        return "fused multiply-add"
    if op in ("vmulps", "vmulss"):
        return "multiply"
    if op in ("vaddps", "vsubps", "vaddss", "vsubss"):
        return "add"
    if "{%k" in text and "(" in text and ("broadcast" in op or op.startswith("vpinsr")):
        return "one lane's load (masked)"
    if "gather" in op:
        return "gather"
    if "(%rsp" in text:
        return "stack (spills, reloads)"
    if op.startswith("j"):
        return "branch"
    if op.startswith(("vperm", "valign", "vshuf", "vpshuf", "vinsert", "vextract", "vblend", "vpblend",
                      "vunpck", "vpunpck", "vbroadcast", "vpbroadcast")):
        return "shuffle, broadcast"
    if op.startswith(("vpcmp", "vcmp", "k")):
        return "compare, mask"
    if op.startswith("v"):
        return "other vector"
    return "scalar (addresses, bounds, lane loop)"


def load_segments(core, wanted):
    """The core's loaded segments (address, bytes) that hold any of the `wanted` addresses."""
    out = []
    with open(core, "rb") as f:
        hdr = f.read(64)
        phoff = struct.unpack_from("<Q", hdr, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        heads = []
        f.seek(phoff)
        for _ in range(phnum):
            heads.append(struct.unpack_from("<IIQQQQQ", f.read(phentsize), 0))
        for p_type, _flags, offset, vaddr, _paddr, filesz, _memsz in heads:
            if p_type != 1 or filesz == 0:
                continue
            lo = bisect.bisect_left(wanted, vaddr)
            if lo < len(wanted) and wanted[lo] < vaddr + filesz:
                f.seek(offset)
                out.append((vaddr, f.read(filesz)))
    return out


def disassemble(segments, workdir):
    insts = []
    path = os.path.join(workdir, "segment.bin")
    for vaddr, data in segments:
        with open(path, "wb") as f:
            f.write(data)
        cmd = ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={vaddr:#x}", path]
        for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)", line)
            # Long instructions continue their bytes on a line of their own, without text.
            if m and m.group(2).strip():
                insts.append((int(m.group(1), 16), m.group(2).strip()))
    insts.sort()
    return insts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tern", default=os.path.join(ROOT, "target", "release", "tern"))
    ap.add_argument("--seconds", type=float, default=3.0, help="sampling window")
    ap.add_argument("--delay", type=float, default=8.0, help="seconds before sampling starts")
    ap.add_argument("--ops", type=int, default=0, help="also print this many most-sampled mnemonics")
    ap.add_argument("profile", nargs="*", help="tern profile arguments (after --)")
    args = ap.parse_args()
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    with tempfile.TemporaryDirectory() as work:
        run = subprocess.Popen([args.tern, "profile", *(args.profile or PROFILE)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(args.delay)
            if run.poll() is not None:
                sys.exit("tern profile ended before sampling: give it more --steps or a shorter --delay")
            data = os.path.join(work, "perf.data")
            subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "5000", "-p", str(run.pid), "-o", data,
                            "--", "sleep", str(args.seconds)], check=True, stderr=subprocess.DEVNULL)
            core = os.path.join(work, "core")
            subprocess.run(["gcore", "-o", core, str(run.pid)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            core = f"{core}.{run.pid}"
        finally:
            run.kill()
            run.wait()
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,dso"], capture_output=True, text=True,
                                check=True).stdout
        samples = collections.Counter()
        total = 0
        for line in script.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            total += 1
            # JIT code has no file behind it: perf names it after a perf map or leaves it unknown.
            if "perf-" in parts[1] or "JIT" in parts[1] or "unknown" in parts[1]:
                samples[int(parts[0], 16)] += 1
        jit = sum(samples.values())
        if not jit:
            sys.exit("no samples fell in JIT-compiled code")
        insts = disassemble(load_segments(core, sorted(samples)), work)
    addrs = [a for a, _ in insts]
    by_kind = collections.Counter()
    by_op = collections.Counter()
    code = set()
    for ip, n in samples.items():
        i = bisect.bisect_left(addrs, ip) - 1
        if i < 0:
            continue
        by_kind[kind(insts[i][1])] += n
        by_op[(insts[i][1].split() or ["?"])[0]] += n
        code.add(i)
    print(f"{total} samples, {jit} ({jit / total:.0%}) in the kernels' JIT code; counted against the "
          "instruction before each sample:")
    for k, n in by_kind.most_common():
        print(f"  {k:40s} {n / jit:6.1%}")
    lo, hi = min(code), max(code)
    mix = collections.Counter(kind(t) for _, t in insts[lo:hi + 1])
    popcounts = sum(1 for _, t in insts[lo:hi + 1] if t.startswith("vpopcnt"))
    print(f"the sampled code's arithmetic: {mix['fused multiply-add']} fused multiply-adds, "
          f"{mix['multiply']} multiplies, {mix['add']} adds, {popcounts} vector popcounts")
    for op, n in by_op.most_common(args.ops):
        print(f"  {op:16s} {n / jit:6.1%}")


if __name__ == "__main__":
    main()
