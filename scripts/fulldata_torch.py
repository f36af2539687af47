#!/usr/bin/env python3
"""PyTorch's side of the full Fashion-MNIST table (driven by scripts/fulldata.py): the same
ResNet as tests/golden/make_golden.py, the same recipe as tern, TTQ as a straight-through
autograd function with learned Wp and Wn (make_golden's TTQ), on the CPU.

    fulldata_torch.py init  --arch resnet20 --seed 0 --out init.safetensors
    fulldata_torch.py train --arch resnet20 --quant fp|ttq --seed 0 --epochs N --lr LR --data DIR
                            --out DIR --init FILE [--stop-after K]

`train` continues from OUT/state.pt when it exists and appends one line per epoch to
OUT/metrics.jsonl in tern's format (plus per-layer Wp, Wn and sparsity for ternary rows).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from make_golden import TTQ, ResNet  # noqa: E402

THRESHOLD = 0.05


def depth(arch):
    return int(arch.removeprefix("resnet"))


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data):
    """Images scaled to [0, 1] and normalised with the training set's mean and std, as tern does."""
    x = {s: read_idx(os.path.join(data, f"{p}-images-idx3-ubyte.gz")) for s, p in [("train", "train"), ("test", "t10k")]}
    y = {s: read_idx(os.path.join(data, f"{p}-labels-idx1-ubyte.gz")) for s, p in [("train", "train"), ("test", "t10k")]}
    train = torch.from_numpy(x["train"].astype(np.float64) / 255)
    mean, std = train.mean().item(), train.std(unbiased=False).item()
    norm = {s: ((torch.from_numpy(x[s].astype(np.float64) / 255) - mean) / std).float().unsqueeze(1) for s in x}
    return norm, {s: torch.from_numpy(y[s].astype(np.int64)) for s in y}


class TTQConv(torch.nn.Module):
    """A 3×3 convolution whose weights are TTQ-ternarized: latent weights rescaled to max|w| = 1,
    Wp = Wn = 1 at the start (tern's recipe)."""

    def __init__(self, conv):
        super().__init__()
        w = conv.weight.detach().clone()
        self.weight = torch.nn.Parameter(w / w.abs().max())
        self.wp = torch.nn.Parameter(torch.ones(1))
        self.wn = torch.nn.Parameter(torch.ones(1))
        self.stride = conv.stride

    def ternary(self):
        return TTQ.apply(self.weight, self.wp, self.wn, THRESHOLD)

    def forward(self, x):
        return F.conv2d(x, self.ternary().reshape(self.weight.shape), stride=self.stride, padding=1)


def model_for(arch, quant, init):
    """The model with `init`'s weights (a safetensors state_dict or a warm-up state.pt); for ttq the
    hidden convolutions (all but the first) become TTQConv."""
    model = ResNet(depth(arch), classes=10, cin=1)
    state = torch.load(init)["model"] if init.endswith(".pt") else load_file(init)
    model.load_state_dict(state)
    if quant == "ttq":
        for block in [b for stage in [model.layer1, model.layer2, model.layer3] for b in stage]:
            block.conv1, block.conv2 = TTQConv(block.conv1), TTQConv(block.conv2)
    elif quant != "fp":
        sys.exit(f"--quant {quant}: the PyTorch rows are fp and ttq")
    return model


def optimizer(model, args):
    """SGD with weight decay on convolution and linear weights only, as tern."""
    decayed = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    other = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    return torch.optim.SGD([{"params": decayed, "weight_decay": args.weight_decay},
                            {"params": other, "weight_decay": 0.0}], lr=args.lr, momentum=args.momentum)


def layer_stats(model):
    out = []
    for name, m in model.named_modules():
        if isinstance(m, TTQConv):
            w = m.weight.detach()
            delta = THRESHOLD * w.abs().max()
            zero = ((w <= delta) & (w >= -delta)).float().mean().item()
            out.append({"name": name, "wp": m.wp.item(), "wn": m.wn.item(), "sparsity": zero})
    return out


def evaluate(model, x, y):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out = model(x[i:i + 1000])
            loss += F.cross_entropy(out, y[i:i + 1000], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + 1000]).sum().item()
    return loss / len(x), correct / len(x)


def train(args):
    torch.set_num_threads(os.cpu_count())
    x, y = load(args.data)
    if args.limit:
        # A smoke test of the script: the first `limit` training and test images only.
        x, y = {k: v[:args.limit] for k, v in x.items()}, {k: v[:args.limit] for k, v in y.items()}
    model = model_for(args.arch, args.quant, args.init)
    opt = optimizer(model, args)
    state_path, metrics_path = os.path.join(args.out, "state.pt"), os.path.join(args.out, "metrics.jsonl")
    start = 0
    if os.path.exists(state_path):
        state = torch.load(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["epoch"]
    steps = len(x["train"]) // args.batch_size
    end = min(args.epochs, args.stop_after or args.epochs)
    for epoch in range(start, end):
        model.train()
        order = torch.randperm(len(x["train"]), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        loss_sum, correct, t0 = 0.0, 0, time.perf_counter()
        for i in range(steps):
            t = epoch * steps + i
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * t / (args.epochs * steps)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            out = model(x["train"][idx])
            loss = F.cross_entropy(out, y["train"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y["train"][idx]).sum().item()
        seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, x["test"], y["test"])
        seen = steps * args.batch_size
        m = {"epoch": epoch + 1, "quant": args.quant, "lr": lr, "train_loss": loss_sum / seen,
             "train_accuracy": correct / seen, "test_loss": test_loss, "test_accuracy": test_acc,
             "images_per_second": seen / seconds, "seconds": seconds, "threads": torch.get_num_threads(),
             "torch": torch.__version__}
        if args.quant != "fp":
            m["layers"] = layer_stats(model)
        print(f"epoch {epoch + 1}/{args.epochs} [{args.quant}] loss {m['train_loss']:.4f} "
              f"test acc {100 * test_acc:.2f}% | {m['images_per_second']:.0f} img/s, {seconds:.1f} s", flush=True)
        tmp = state_path + ".tmp"
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1}, tmp)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(m) + "\n")
        os.replace(tmp, state_path)


def init(args):
    torch.manual_seed(args.seed)
    model = ResNet(depth(args.arch), classes=10, cin=1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init")
    t = sub.add_parser("train")
    for s in [i, t]:
        s.add_argument("--arch", default="resnet20")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--out", required=True)
    t.add_argument("--quant", choices=["fp", "ttq"], required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--init", required=True)
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--stop-after", type=int)
    t.add_argument("--lr", type=float, required=True)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--limit", type=int, help="use only the first N images of each split (a smoke test)")
    args = p.parse_args()
    (init if args.command == "init" else train)(args)


if __name__ == "__main__":
    main()
