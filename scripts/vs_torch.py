#!/usr/bin/env python3
"""tern beside PyTorch on the same machine: ResNet-20 on 3×32×32, training steps and inference,
both on the same number of CPU threads, runs alternating (tern, PyTorch, tern, ...), medians over
rounds; next to the machine's ceilings (`tern bench --suite roofline`), the CPU's theoretical
fp32 peak from /proc/cpuinfo and what a tuned library draws from the silicon (PyTorch's fp32
matrix product on the same threads).

    cargo build --release
    python3 scripts/vs_torch.py [--rounds 3] [--json results/vs_torch.json]

PyTorch (CPU, eager) is installed with pip into .venv-torch when this Python has no torch. Its
TTQ step is make_golden's straight-through TTQ with learned Wp and Wn (scripts/fulldata_torch.py);
its inference is fp32, since PyTorch has no ternary kernels. tern's inference figures come from
`tern bench` (wall clock around each run), its training steps from `tern profile`'s steps run
without timestamps.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def ensure_torch():
    """Re-run under .venv-torch (created with pip) when torch is missing here."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(ROOT, ".venv-torch")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print("installing torch (CPU) into .venv-torch with pip", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy", "safetensors"], check=True)
    os.execv(py, [py] + sys.argv)


def run(cmd):
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def tern_step_ms(tern, mode, quant, batch, steps):
    """Wall time of one training step from `tern profile`'s unprofiled steps (no timestamps between
    dispatches, which cost llvmpipe time a real run does not spend), host phases included."""
    out = run([tern, "profile", "--arch", "resnet20", "--channels", "3", "--size", "32", "--batch-size", str(batch),
               "--quant", quant, "--mode", mode, "--steps", str(steps)])
    line = next(line for line in out.splitlines() if line.startswith("unprofiled:"))
    return float(re.search(r"([0-9.]+) ms per step", line).group(1))


def tern_infer(tern, reps):
    """{batch: packed ternary images/s} from `tern bench --suite infer` (wall clock around each run,
    no timestamps: `tern profile`'s per-dispatch timestamps cost most at small batches)."""
    out = run([tern, "bench", "--suite", "infer", "--reps", str(reps)])
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)\s+[0-9.]+x", line)
        if m:
            rows[int(m.group(1))] = float(m.group(2))
    return rows


def tern_bitplane(tern, reps):
    """{batch: (float-activation images/s, bit-plane images/s)} from `tern bench --suite bitplane`."""
    out = run([tern, "bench", "--suite", "bitplane", "--reps", str(reps)])
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+[0-9.]+x", line)
        if m:
            rows[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return rows


def roofline(tern):
    out = run([tern, "bench", "--suite", "roofline"])
    num = lambda pat: float(re.search(pat, out).group(1))  # noqa: E731
    return {"copy_gbs": num(r"copy.*?([0-9.]+) GB/s one float"), "copy_vec4_gbs": num(r"([0-9.]+) GB/s one vec4"),
            "fma_gflops": num(r"multiply-add.*?([0-9.]+) GFLOP/s"), "conv_gflops": num(r"best convolution.*?([0-9.]+) GFLOP/s"),
            "popcount_gsteps": num(r"AND \+ popcount.*?([0-9.]+) G steps/s")}


def cpu_peak():
    """cores × 2 FMA units × fp32 lanes × 2 flops × clock: the textbook peak (2 FMA units is an
    assumption that holds for current server cores; the clock is the one /proc/cpuinfo reports)."""
    with open("/proc/cpuinfo") as f:
        info = f.read()
    flags = re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split()
    mhz = statistics.mean(float(v) for v in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", info, re.M))
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags and "fma" in flags else 4
    cores = os.cpu_count()
    model = re.search(r"^model name\s*:\s*(.*)$", info, re.M).group(1)
    return {"cpu": model, "cores": cores, "mhz": mhz, "fp32_lanes": lanes,
            "peak_gflops": cores * 2 * lanes * 2 * mhz / 1000}


def resnet20_flops(batch, train):
    """Multiply-adds ×2 of ResNet-20's convolutions and linear layer on 3×32×32 (forward); a
    training step is counted as three forwards (forward, input and weight gradients)."""
    flops, size, cin = 2 * 3 * 16 * 9 * 32 * 32, 32, 16
    for stage, cout in enumerate([16, 32, 64]):
        for i in range(3):
            stride = 2 if stage > 0 and i == 0 else 1
            size //= stride
            flops += 2 * (cin * cout + cout * cout) * 9 * size * size
            cin = cout
    flops += 2 * 64 * 10
    return flops * batch * (3 if train else 1)


class Torch:
    def __init__(self, threads):
        import torch
        import fulldata_torch
        from make_golden import ResNet
        torch.set_num_threads(threads)
        self.torch, self.ft, self.ResNet = torch, fulldata_torch, ResNet

    def model(self, quant):
        m = self.ResNet(20, classes=10, cin=3)
        if quant == "ttq":
            for block in [b for stage in [m.layer1, m.layer2, m.layer3] for b in stage]:
                block.conv1, block.conv2 = self.ft.TTQConv(block.conv1), self.ft.TTQConv(block.conv2)
        return m

    def step_ms(self, quant, batch, steps):
        torch = self.torch
        m = self.model(quant)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        times = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    def gemm_gflops(self, n=2048, reps=5):
        """PyTorch's fp32 n×n matrix product on this many threads, the best of `reps` after one
        warm-up: the multiply-add rate a tuned library reaches on this CPU."""
        torch = self.torch
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9

    def infer_ips(self, batch, steps):
        torch = self.torch
        m = self.model("fp").eval()
        x = torch.randn(batch, 3, 32, 32)
        times = []
        with torch.no_grad():
            for i in range(steps + 2):
                t0 = time.perf_counter()
                m(x)
                if i >= 2:
                    times.append(time.perf_counter() - t0)
        return batch / statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tern", default=os.path.join(ROOT, "target", "release", "tern"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads (default: every core, as llvmpipe)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    ensure_torch()
    torch = Torch(args.threads)
    tern = os.path.abspath(args.tern)
    work = [("training step b32, TTQ", "ms", lambda: tern_step_ms(tern, "train", "ttq", 32, args.steps),
             lambda: torch.step_ms("ttq", 32, args.steps)),
            ("training step b32, FP", "ms", lambda: tern_step_ms(tern, "train", "fp", 32, args.steps),
             lambda: torch.step_ms("fp", 32, args.steps))]
    # tern's inference figures come from one `tern bench --suite infer` run per round (`measured`).
    measured = {}
    for b in [1, 32, 128]:
        work.append((f"inference b{b}, tern packed TTQ / PyTorch fp32", "img/s",
                     lambda b=b: measured["infer"][b], lambda b=b: torch.infer_ips(b, args.steps)))
    results = {name: {"unit": unit, "tern": [], "pytorch": []} for name, unit, _, _ in work}
    bitplane = {b: [] for b in [1, 32, 128]}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        measured["infer"] = tern_infer(tern, args.steps)
        for name, _, t, pt in work:
            results[name]["tern"].append(t())
            results[name]["pytorch"].append(pt())
        for b, v in tern_bitplane(tern, args.steps).items():
            if b in bitplane:
                bitplane[b].append(v)
    ceilings, cpu = roofline(tern), cpu_peak()
    cpu["torch_gemm_gflops"] = torch.gemm_gflops()
    print(f"\n{cpu['cpu']}, {cpu['cores']} cores at {cpu['mhz']:.0f} MHz; tern on "
          f"{run([tern, 'devices']).splitlines()[0].split(': ', 1)[1].split(' [')[0]}; PyTorch "
          f"{torch.torch.__version__} on {args.threads} threads; medians of {args.rounds} alternating rounds\n")
    print("| work | tern | PyTorch | tern / PyTorch (speed) |")
    print("| --- | --- | --- | --- |")
    for name, unit, _, _ in work:
        t, pt = statistics.median(results[name]["tern"]), statistics.median(results[name]["pytorch"])
        speed = pt / t if unit == "ms" else t / pt
        results[name] |= {"tern_median": t, "pytorch_median": pt, "speed_ratio": speed}
        print(f"| {name} | {t:.1f} {unit} | {pt:.1f} {unit} | {speed:.2f}× |")
    for b, v in bitplane.items():
        ips = statistics.median(bits for _, bits in v)
        pt = results[f"inference b{b}, tern packed TTQ / PyTorch fp32"]["pytorch_median"]
        print(f"| STTN bit-plane inference b{b} (ternary activations) / PyTorch fp32 | {ips:.1f} img/s | {pt:.1f} img/s | {ips / pt:.2f}× |")
    for b, v in bitplane.items():
        ratios = [bits / float_path for float_path, bits in v]
        print(f"STTN b{b}: bit-planes / tern's float activations, same run: {statistics.median(ratios):.2f}× "
              f"(median of {len(ratios)})")
    step = results["training step b32, TTQ"]
    flops = resnet20_flops(32, True) / 1e9
    print(f"\nceilings: tern multiply-add {ceilings['fma_gflops']:.1f} GFLOP/s, AND + popcount "
          f"{ceilings['popcount_gsteps']:.2f} G steps/s, best convolution "
          f"{ceilings['conv_gflops']:.1f} GFLOP/s, copy {ceilings['copy_gbs']:.2f} GB/s "
          f"({ceilings['copy_vec4_gbs']:.2f} vec4); CPU fp32 peak {cpu['peak_gflops']:.0f} GFLOP/s "
          f"({cpu['cores']} cores × 2 FMA units × {cpu['fp32_lanes']} lanes × 2 × {cpu['mhz'] / 1000:.2f} GHz); "
          f"measured: PyTorch's 2048² fp32 matrix product {cpu['torch_gemm_gflops']:.1f} GFLOP/s")
    print(f"ResNet-20 TTQ step b32 ({flops:.2f} GFLOP as 3 forwards): tern {flops / step['tern_median'] * 1000:.1f} "
          f"GFLOP/s, PyTorch {flops / step['pytorch_median'] * 1000:.1f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "ceilings": ceilings, "rounds": args.rounds, "threads": args.threads,
                       "torch": torch.torch.__version__, "results": results,
                       "bitplane_images_per_second": bitplane}, f, indent=1)


if __name__ == "__main__":
    main()
