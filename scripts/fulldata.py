#!/usr/bin/env python3
"""The full Fashion-MNIST table: tern and PyTorch, full precision against ternary, run to the end
over as many sittings as it takes.

    python3 scripts/fulldata.py run       # continue the table where it stopped (commits as it goes)
    python3 scripts/fulldata.py status    # which rows are done, in progress, waiting
    python3 scripts/fulldata.py report    # results/fulldata.json and docs/results.md from the rows

One recipe for every row (RECIPE below): SGD with momentum 0.9, batch 64, weight decay 5e-4 on
convolution and linear weights, peak learning rate 0.1 with cosine decay to zero, no augmentation,
60 000 training and 10 000 test images. A full-precision row trains EPOCHS[arch] epochs from the
initialisation; a ternary row is TTQ's fine-tuning: it starts from its full-precision row's weights
after SWITCH[arch] epochs (the shared warm-up) and trains the remaining epochs with the quantizer,
from that epoch's learning rate down to zero. Both therefore see the same number of epochs. The
ResNet-20 rows of tern and PyTorch start from the same weights: PyTorch's initialisation for the
seed, which tern reads with --init.

State lives in the repository so that a later sitting continues: each row's directory under
results/fulldata/ holds its metrics.jsonl and curves.png; a row in progress also holds its
last.safetensors (tern) or state.pt (PyTorch), a finished row its row.json and, for ternary rows,
the packed export; the full-precision warm-up checkpoint stays until every row that starts from it
is done. After every epoch the driver commits results/fulldata (only that path).
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results", "fulldata")
DATA = "/usr/share/datasets/fashion-mnist"
RECIPE = {"batch_size": 64, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine"}
EPOCHS = {"small-cnn": 15, "resnet20": 7, "resnet32": 7}
SWITCH = {"small-cnn": 10, "resnet20": 4, "resnet32": 4}


class Row:
    def __init__(self, framework, arch, quant, seed):
        self.framework, self.arch, self.quant, self.seed = framework, arch, quant, seed

    @property
    def name(self):
        return f"{self.framework}-{self.arch}-{self.quant}-s{self.seed}"

    @property
    def dir(self):
        return os.path.join(RESULTS, self.name)

    @property
    def warmup_of(self):
        """The full-precision row this row fine-tunes from (None for a full-precision row)."""
        return None if self.quant == "fp" else Row(self.framework, self.arch, "fp", self.seed)

    @property
    def epochs(self):
        total = EPOCHS[self.arch]
        return total if self.quant == "fp" else total - SWITCH[self.arch]

    @property
    def lr(self):
        """Peak learning rate of this row: a ternary row starts at the warm-up's last rate."""
        if self.quant == "fp":
            return RECIPE["lr"]
        return RECIPE["lr"] * 0.5 * (1 + math.cos(math.pi * SWITCH[self.arch] / EPOCHS[self.arch]))

    def done(self):
        return os.path.exists(os.path.join(self.dir, "row.json"))


def rows():
    """In the order they run: the small CNN, then the ResNet-20 pair (tern and PyTorch on the same
    initialisation) for seed 0, PyTorch's seed 1 (the faster of the two), tern's seed 1, then the
    extras."""
    out = [Row("tern", "small-cnn", q, 0) for q in ["fp", "ttq", "twn", "ttn", "sttn"]]
    for fw, seed in [("tern", 0), ("pytorch", 0), ("pytorch", 1), ("tern", 1)]:
        out += [Row(fw, "resnet20", "fp", seed), Row(fw, "resnet20", "ttq", seed)]
    out += [Row("tern", "resnet20", q, 0) for q in ["ttn", "sttn"]]
    out += [Row("tern", "resnet32", q, 0) for q in ["fp", "ttq"]]
    return out


def log(msg):
    print(f"[fulldata {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def commit(message, enabled, curves=False):
    """Commit results/fulldata; curves.png only when a row is done (each version would stay in
    the history)."""
    if not enabled:
        return
    paths = [RESULTS] if curves else [RESULTS, ":(exclude,glob)results/fulldata/**/curves.png"]
    for _ in range(10):
        add = subprocess.run(["git", "add", "-A", "--"] + paths, cwd=ROOT)
        if add.returncode == 0:
            c = subprocess.run(["git", "commit", "-q", "-m", message, "--"] + paths, cwd=ROOT,
                               capture_output=True, text=True)
            if c.returncode == 0 or "nothing to commit" in c.stdout + c.stderr:
                return
        time.sleep(3)  # another git command holds the index
    log(f"could not commit ({message}); the files stay in {RESULTS}")


def metrics(row):
    path = os.path.join(row.dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def warmup_path(row):
    return os.path.join(row.dir, "warmup.safetensors" if row.framework == "tern" else "warmup.pt")


def run_tern(row, args):
    """One invocation per epoch (--stop-after), so every epoch is a commit point."""
    os.makedirs(RESULTS, exist_ok=True)
    tern = os.path.abspath(args.tern)
    done = len(metrics(row))
    while done < row.epochs:
        cmd = [tern, "train"]
        if os.path.exists(os.path.join(row.dir, "last.safetensors")):
            cmd += ["--resume", row.dir]
        else:
            if os.path.exists(row.dir):
                shutil.rmtree(row.dir)  # a start that did not finish its first epoch
            cmd += ["--arch", row.arch, "--quant", row.quant, "--dataset", "fashion-mnist", "--data", DATA,
                    "--epochs", str(row.epochs), "--fp-epochs", "0", "--seed", str(row.seed),
                    "--batch-size", str(RECIPE["batch_size"]), "--lr", f"{row.lr:.6g}",
                    "--momentum", str(RECIPE["momentum"]), "--weight-decay", str(RECIPE["weight_decay"]),
                    "--schedule", RECIPE["schedule"], "--out", row.dir]
            init = init_for(row, args)
            if init:
                cmd += ["--init", init]
        cmd += ["--stop-after", str(done + 1)]
        log(" ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
        subprocess.run(cmd, check=True)
        done = len(metrics(row))
        keep_warmup(row, done)
        commit(f"fulldata: {row.name} epoch {done}/{row.epochs}", args.commit)
    finish(row, args)


def init_for(row, args):
    """What a row starts from: its warm-up, or for ResNets PyTorch's initialisation of the seed."""
    if row.warmup_of:
        path = warmup_path(row.warmup_of)
        if not os.path.exists(path):
            sys.exit(f"{row.name}: {os.path.relpath(path, ROOT)} is missing (run {row.warmup_of.name} first)")
        return path
    if row.arch.startswith("resnet"):
        return torch_init(row, args)
    return None


def torch_init(row, args):
    """PyTorch's initialisation of the seed, regenerated when missing (not committed: over 1 MB)."""
    path = os.path.join(RESULTS, ".init", f"{row.arch}-s{row.seed}.safetensors")
    if not os.path.exists(path):
        torch_script(["init", "--arch", row.arch, "--seed", str(row.seed), "--out", path], args)
    return path


def keep_warmup(row, done):
    """After the warm-up epochs of a full-precision row, keep its checkpoint for the ternary rows."""
    if row.quant != "fp" or done != SWITCH[row.arch]:
        return
    src = os.path.join(row.dir, "last.safetensors" if row.framework == "tern" else "state.pt")
    shutil.copyfile(src, warmup_path(row))


def torch_python(args):
    """A Python with torch: --python, else .venv-torch in the repository (created with pip)."""
    if args.python:
        return args.python
    venv = os.path.join(ROOT, ".venv-torch")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log("installing torch (CPU) into .venv-torch with pip")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy", "safetensors"], check=True)
    return py


def torch_script(argv, args):
    cmd = [torch_python(args), os.path.join(ROOT, "scripts", "fulldata_torch.py")] + argv
    subprocess.run(cmd, check=True)


def run_torch(row, args):
    os.makedirs(row.dir, exist_ok=True)
    while len(metrics(row)) < row.epochs:
        argv = ["train", "--arch", row.arch, "--quant", row.quant, "--seed", str(row.seed),
                "--epochs", str(row.epochs), "--lr", f"{row.lr:.6g}", "--data", DATA, "--out", row.dir,
                "--stop-after", str(len(metrics(row)) + 1)]
        for k in ["batch_size", "momentum", "weight_decay"]:
            argv += [f"--{k.replace('_', '-')}", str(RECIPE[k])]
        argv += ["--init", init_for(row, args)]
        log(f"{row.name}: PyTorch epoch {len(metrics(row)) + 1}/{row.epochs}")
        torch_script(argv, args)
        done = len(metrics(row))
        keep_warmup(row, done)
        commit(f"fulldata: {row.name} epoch {done}/{row.epochs}", args.commit)
    finish(row, args)


def finish(row, args):
    """Write row.json; export a ternary tern row; drop checkpoints nothing needs any more."""
    m = metrics(row)
    layers = m[-1].get("layers", [])
    record = {
        "framework": row.framework, "model": row.arch, "quant": row.quant, "seed": row.seed,
        "train_images": 60000, "test_images": 10000, "epochs": EPOCHS[row.arch],
        "fine_tune_epochs": 0 if row.quant == "fp" else row.epochs,
        "test_accuracy": m[-1]["test_accuracy"], "best_test_accuracy": max(e["test_accuracy"] for e in m),
        "images_per_second": statistics.median(e["images_per_second"] for e in m),
        "wall_s": sum(e["seconds"] for e in m), "recipe": RECIPE | {"lr": row.lr}, "layers": layers,
        "machine": machine(row, args),
    }
    if row.framework == "tern":
        last = os.path.join(row.dir, "last.safetensors")
        if row.quant != "fp":
            packed = os.path.join(row.dir, "model.tern.safetensors")
            if os.path.exists(packed):
                os.remove(packed)
            subprocess.run([os.path.abspath(args.tern), "export", "--model", last, "--out", packed], check=True)
            record["packed_bytes"] = os.path.getsize(packed)
        for f in ["last.safetensors", "best.safetensors"]:
            if os.path.exists(os.path.join(row.dir, f)):
                os.remove(os.path.join(row.dir, f))
    else:
        state = os.path.join(row.dir, "state.pt")
        if os.path.exists(state):
            os.remove(state)
    with open(os.path.join(row.dir, "row.json"), "w") as f:
        json.dump(record, f, indent=1)
    # A warm-up checkpoint goes once every row fine-tuning from it is done.
    for fp in {r.warmup_of.name: r.warmup_of for r in rows() if r.warmup_of}.values():
        users = [r for r in rows() if r.warmup_of and r.warmup_of.name == fp.name]
        if all(r.done() for r in users) and os.path.exists(warmup_path(fp)):
            os.remove(warmup_path(fp))
    log(f"{row.name} done: test accuracy {100 * record['test_accuracy']:.2f} %")
    commit(f"fulldata: {row.name} done ({100 * record['test_accuracy']:.2f} %)", args.commit, curves=True)


def machine(row, args):
    """The CPU, and what ran the row: tern's first adapter, or PyTorch's version and threads."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = {"cpu": cpu, "cores": os.cpu_count()}
    if row.framework == "tern":
        devices = subprocess.run([os.path.abspath(args.tern), "devices"], capture_output=True, text=True)
        first = devices.stdout.splitlines()[0] if devices.stdout else "unknown adapter"
        out["adapter"] = first.split(": ", 1)[-1].split(" [")[0]
    else:
        last = metrics(row)[-1]
        out["adapter"] = f"CPU, PyTorch {last.get('torch', '?')}, {last.get('threads', '?')} threads"
    return out


def status(args):
    for r in rows():
        m = metrics(r)
        state = "done" if r.done() else (f"{len(m)}/{r.epochs} epochs" if m else "waiting")
        acc = f" {100 * m[-1]['test_accuracy']:.2f} %" if m else ""
        print(f"{r.name:<32} {state}{acc}")


def run(args):
    for r in rows():
        if r.done() or (args.only and args.only not in r.name):
            continue
        (run_tern if r.framework == "tern" else run_torch)(r, args)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "status", "report"])
    p.add_argument("--tern", default=os.path.join(ROOT, "target", "release", "tern"),
                   help="the tern binary (default: target/release/tern; build it with cargo build --release)")
    p.add_argument("--python", help="a Python with torch, numpy and safetensors (default: .venv-torch)")
    p.add_argument("--only", help="run only the rows whose name contains this")
    p.add_argument("--no-commit", dest="commit", action="store_false", help="leave committing to you")
    args = p.parse_args()
    if args.command == "report":
        import fulldata_report
        fulldata_report.main(rows(), RESULTS)
    else:
        {"run": run, "status": status}[args.command](args)


if __name__ == "__main__":
    main()
