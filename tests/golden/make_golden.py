#!/usr/bin/env python3
"""Golden values from PyTorch for the op checks (src/check/<op>.rs, run by tests/ops).

    pip install torch safetensors numpy
    python3 tests/golden/make_golden.py      # rewrites tests/golden/*.safetensors

Inputs are float32 values; every output is computed by PyTorch in float64 from them and stored
as float32. Each case is a group of tensors named "<case>.<tensor>"; integer settings (shapes,
strides) are stored as float32 tensors named "<case>.geom".
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(2017)
D = torch.float64


def rand(*shape):
    """float32-representable values in [-1, 1), held as float64."""
    return (torch.rand(*shape) * 2 - 1).float().double()


def store(out, case, **tensors):
    for k, v in tensors.items():
        out[f"{case}.{k}"] = v.detach().to(torch.float32).contiguous()


def geom(*values):
    return torch.tensor(values, dtype=D)


class TTQ(torch.autograd.Function):
    """Trained Ternary Quantization (Zhu et al. 2017) with t·max|w| threshold."""

    @staticmethod
    def forward(ctx, w, wp, wn, t):
        delta = t * w.abs().max()
        pos, neg = w > delta, w < -delta
        ctx.save_for_backward(pos, neg, wp, wn)
        return torch.where(pos, wp, torch.where(neg, -wn, torch.zeros_like(w)))

    @staticmethod
    def backward(ctx, g):
        pos, neg, wp, wn = ctx.saved_tensors
        dw = torch.where(pos, wp * g, torch.where(neg, wn * g, g))
        return dw, g[pos].sum().reshape(1), -g[neg].sum().reshape(1), None


def ttn_forward(w, delta):
    """TTN (He & Fan 2018): α = μ + σ·φ(a)/(1 − Φ(a)), a = δ'/σ, δ' = clamp(δ, 0, 3σ); T is a
    straight-through estimator with ∂T/∂w = 1/α; gradients reach δ, μ and σ through α."""
    mu = w.mean()
    sigma = ((w - mu) ** 2).mean().sqrt()
    d = torch.minimum(torch.clamp(delta, min=0.0), 3 * sigma)
    a = d / sigma
    normal = torch.distributions.Normal(torch.zeros((), dtype=D), torch.ones((), dtype=D))
    lam = normal.log_prob(a).exp() / (1 - normal.cdf(a))
    alpha = mu + sigma * lam
    with torch.no_grad():
        t = torch.where(w > mu + d, 1.0, torch.where(w < mu - d, -1.0, 0.0)).to(D)
    t_ste = t + (w - w.detach()) / alpha.detach()
    return alpha * t_ste


def ttn_cases(out):
    for i, (shape, shift, delta) in enumerate([((8, 4, 3, 3), 0.0, 0.05), ((6, 5, 3, 3), 0.1, 0.3), ((10, 30), -0.05, 5.0)]):
        w = (rand(*shape) + shift).requires_grad_()
        d = torch.tensor([delta], dtype=D, requires_grad=True)
        wq = ttn_forward(w, d)
        g = rand(*shape)
        wq.backward(g)
        store(out, f"ttn{i}", w=w, delta=d, wq=wq, g=g, dw=w.grad, ddelta=d.grad)


class SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; straight-through where |w| ≤ 1."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * (w.abs() <= 1).to(g.dtype)


def sttn_forward(w1, w2):
    """STTN (Xu et al. 2020): α·(sign W1 + sign W2), α per output channel = (‖W1‖₁ + ‖W2‖₁)/(2n)."""
    n = w1[0].numel()
    alpha = (w1.abs().flatten(1).sum(1) + w2.abs().flatten(1).sum(1)) / (2 * n)
    shape = (-1,) + (1,) * (w1.dim() - 1)
    return alpha.view(shape) * (SignSTE.apply(w1) + SignSTE.apply(w2))


def sttn_cases(out):
    for i, shape in enumerate([(8, 4, 3, 3), (10, 70)]):
        w1 = (rand(*shape) * 1.3).requires_grad_()
        w2 = (rand(*shape) * 1.3).requires_grad_()
        wq = sttn_forward(w1, w2)
        g = rand(*shape)
        wq.backward(g)
        store(out, f"sttn{i}", w1=w1, w2=w2, wq=wq, g=g, dw1=w1.grad, dw2=w2.grad)


class TernaryActSTE(torch.autograd.Function):
    """+1 above 0.5, −1 below −0.5, else 0; straight-through where |x| ≤ 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0.5, 1.0, torch.where(x < -0.5, -1.0, 0.0)).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def ternary_unit_cases(out):
    """STTN's ResNet unit: BN → ternary activation → conv (STTN weights) → BN, + shortcut."""
    for case, cin, cout, stride in [("unit_sttn", 8, 8, 1), ("unit_down_sttn", 4, 8, 2)]:
        n, h = 3, 6
        x = (rand(n, cin, h, h) * 2).requires_grad_()
        p = {
            f"{case}.bn1_in.weight": 1 + 0.3 * rand(cin), f"{case}.bn1_in.bias": 0.3 * rand(cin),
            f"{case}.conv1.weight": rand(cout, cin, 3, 3), f"{case}.conv1.weight2": rand(cout, cin, 3, 3),
            f"{case}.bn1.weight": 1 + 0.2 * rand(cout), f"{case}.bn1.bias": 0.2 * rand(cout),
        }
        for v in p.values():
            v.requires_grad_()
        running = {f"{case}.{b}.{s}": (torch.zeros if s == "running_mean" else torch.ones)(c, dtype=D)
                   for b, c in (("bn1_in", cin), ("bn1", cout)) for s in ("running_mean", "running_var")}

        def bn(t, b):
            return F.batch_norm(t, running[f"{case}.{b}.running_mean"], running[f"{case}.{b}.running_var"],
                                p[f"{case}.{b}.weight"], p[f"{case}.{b}.bias"], training=True, momentum=0.1, eps=1e-5)

        a = TernaryActSTE.apply(bn(x, "bn1_in"))
        wq = sttn_forward(p[f"{case}.conv1.weight"], p[f"{case}.conv1.weight2"])
        hh = bn(F.conv2d(a, wq, stride=stride, padding=1), "bn1")
        sc = x if stride == 1 and cin == cout else F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, (cout - cin) // 2, (cout - cin) // 2))
        y = hh + sc
        dy = rand(*y.shape)
        y.backward(dy)
        tensors = {"x": x, "y": y, "dy": dy, "dx": x.grad, "geom": geom(cin, cout, stride)}
        store(out, case, **tensors)
        for k, v in p.items():
            out[k] = v.detach().float().contiguous()
            out[f"{k}.grad"] = v.grad.float().contiguous()
        for k, v in running.items():
            out[k] = v.float().contiguous()


def conv_cases(out):
    shapes = [  # n, cin, h, w, cout, k, stride, pad
        (1, 1, 5, 5, 1, 3, 1, 1),
        (2, 3, 7, 9, 5, 3, 1, 1),
        (3, 4, 8, 8, 8, 3, 2, 1),
        (2, 5, 9, 6, 7, 1, 1, 0),
        (2, 6, 11, 10, 3, 5, 2, 2),
        (4, 16, 16, 16, 32, 3, 2, 1),
    ]
    for i, (n, cin, h, w, cout, k, s, p) in enumerate(shapes):
        x = rand(n, cin, h, w).requires_grad_()
        wt = rand(cout, cin, k, k).requires_grad_()
        y = F.conv2d(x, wt, stride=s, padding=p)
        dy = rand(*y.shape)
        y.backward(dy)
        store(out, f"conv{i}", geom=geom(n, cin, h, w, cout, k, s, p), x=x, w=wt, y=y, dy=dy, dx=x.grad, dw=wt.grad)


def batchnorm_cases(out):
    for i, (n, c, h, w) in enumerate([(2, 3, 4, 5), (4, 8, 7, 7), (3, 5, 17, 3)]):
        x = (rand(n, c, h, w) * 2 + 0.5).requires_grad_()
        gamma, beta = rand(c).requires_grad_(), rand(c).requires_grad_()
        rm, rv = torch.zeros(c, dtype=D), torch.ones(c, dtype=D)
        y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
        dy = rand(*y.shape)
        y.backward(dy)
        y_eval = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=1e-5)
        store(out, f"bn{i}", x=x, gamma=gamma, beta=beta, y=y, dy=dy, dx=x.grad, dgamma=gamma.grad,
              dbeta=beta.grad, running_mean=rm, running_var=rv, y_eval=y_eval)


def small_op_cases(out):
    x = rand(2, 3, 7, 5).requires_grad_()
    y = F.max_pool2d(x, 2, 2)
    dy = rand(*y.shape)
    y.backward(dy)
    store(out, "maxpool", geom=geom(2, 2), x=x, y=y, dy=dy, dx=x.grad)

    x = rand(3, 5, 7, 6).requires_grad_()
    y = x.mean(dim=(2, 3))
    dy = rand(*y.shape)
    y.backward(dy)
    store(out, "avgpool", x=x, y=y, dy=dy, dx=x.grad)

    x = rand(4, 33).requires_grad_()
    y = F.relu(x)
    dy = rand(*y.shape)
    y.backward(dy)
    store(out, "relu", x=x, y=y, dy=dy, dx=x.grad)

    x = rand(5, 37).requires_grad_()
    w, b = rand(11, 37).requires_grad_(), rand(11).requires_grad_()
    y = F.linear(x, w, b)
    dy = rand(*y.shape)
    y.backward(dy)
    store(out, "linear", x=x, w=w, b=b, y=y, dy=dy, dx=x.grad, dw=w.grad, db=b.grad)

    logits = (rand(9, 10) * 4).requires_grad_()
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5])
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    store(out, "xent", logits=logits, labels=labels.double(), loss=loss.reshape(1), dlogits=logits.grad)

    # SGD (momentum 0.9, weight decay 5e-4) two steps from zero velocity.
    w = rand(50).requires_grad_()
    w0 = w.detach().clone()
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=5e-4)
    grads = [rand(50), rand(50)]
    for g in grads:
        w.grad = g.clone()
        opt.step()
    store(out, "sgd", w0=w0, g0=grads[0], g1=grads[1], w=w, v=opt.state[w]["momentum_buffer"])


def ttq_cases(out):
    for i, (shape, t) in enumerate([((8, 4, 3, 3), 0.05), ((5, 3, 5, 5), 0.05), ((10, 64), 0.3)]):
        w = rand(*shape).requires_grad_()
        wp = torch.tensor([0.8], dtype=D, requires_grad=True)
        wn = torch.tensor([1.3], dtype=D, requires_grad=True)
        wq = TTQ.apply(w, wp, wn, t)
        g = rand(*shape)
        wq.backward(g)
        store(out, f"ttq{i}", geom=geom(t), w=w, wp=wp, wn=wn, wq=wq, g=g, dw=w.grad, dwp=wp.grad, dwn=wn.grad)


def block_cases(out):
    """A CIFAR ResNet basic block, forward and backward, identity and option-A shortcut, FP and TTQ."""
    cases = [("block_fp", 8, 8, 1, False), ("block_ttq", 8, 8, 1, True), ("block_down_ttq", 4, 8, 2, True)]
    for case, cin, cout, stride, ttq in cases:
        n, h = 3, 6
        x = rand(n, cin, h, h).requires_grad_()
        p = {
            "conv1.weight": rand(cout, cin, 3, 3) * 0.5,
            "bn1.weight": 1 + 0.2 * rand(cout), "bn1.bias": 0.2 * rand(cout),
            "conv2.weight": rand(cout, cout, 3, 3) * 0.5,
            "bn2.weight": 1 + 0.2 * rand(cout), "bn2.bias": 0.2 * rand(cout),
        }
        if ttq:
            for c in ("conv1", "conv2"):
                p[f"{c}.wp"] = torch.tensor([0.9], dtype=D)
                p[f"{c}.wn"] = torch.tensor([1.1], dtype=D)
        for v in p.values():
            v.requires_grad_()
        running = {f"{b}.{s}": torch.zeros(cout, dtype=D) if s == "running_mean" else torch.ones(cout, dtype=D)
                   for b in ("bn1", "bn2") for s in ("running_mean", "running_var")}

        def weight(c):
            w = p[f"{c}.weight"]
            return TTQ.apply(w, p[f"{c}.wp"], p[f"{c}.wn"], 0.05) if ttq else w

        def bn(h, b):
            return F.batch_norm(h, running[f"{b}.running_mean"], running[f"{b}.running_var"],
                                p[f"{b}.weight"], p[f"{b}.bias"], training=True, momentum=0.1, eps=1e-5)

        hh = F.relu(bn(F.conv2d(x, weight("conv1"), stride=stride, padding=1), "bn1"))
        hh = bn(F.conv2d(hh, weight("conv2"), padding=1), "bn2")
        if stride == 1 and cin == cout:
            sc = x
        else:
            pad = (cout - cin) // 2
            sc = F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, pad, pad))
        y = F.relu(hh + sc)
        dy = rand(*y.shape)
        y.backward(dy)
        tensors = {"x": x, "y": y, "dy": dy, "dx": x.grad, "geom": geom(cin, cout, stride, int(ttq))}
        for k, v in p.items():
            tensors[k] = v
            tensors[f"{k}.grad"] = v.grad
        tensors.update(running)
        store(out, case, **tensors)


class Block(torch.nn.Module):
    """CIFAR ResNet basic block with the option-A shortcut (He et al. 2016, §4.2)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        sc = x
        if self.stride != 1 or self.pad:
            sc = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(h + sc)


class ResNet(torch.nn.Module):
    def __init__(self, depth=20, classes=10, cin=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = torch.nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        c = 16
        for stage, cout in enumerate([16, 32, 64]):
            blocks = []
            for i in range(n):
                blocks.append(Block(c, cout, 2 if stage > 0 and i == 0 else 1))
                c = cout
            setattr(self, f"layer{stage + 1}", torch.nn.Sequential(*blocks))
        self.linear = torch.nn.Linear(64, classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.linear(h.mean(dim=(2, 3)))


def resnet20_fixture():
    """A PyTorch ResNet-20 state_dict (float32, with num_batches_tracked as PyTorch saves it), four
    32×32 PNG images, and PyTorch's logits for them after CIFAR-10 normalisation."""
    from PIL import Image

    model = ResNet(20)
    model.train()
    with torch.no_grad():  # realistic running statistics
        for _ in range(20):
            model(torch.rand(32, 3, 32, 32) * 2 - 1)
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(HERE, "resnet20_torch.safetensors"), metadata={"generator": "make_golden.py"})
    images = os.path.join(HERE, "images")
    os.makedirs(images, exist_ok=True)
    pixels = []
    for i in range(4):
        yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
        rgb = torch.stack([(xx * (5 + i) + yy * 3) % 256, (yy * (7 - i) + 40 * i) % 256, ((xx - 16) ** 2 + (yy - 16) ** 2 + 60 * i) % 256])
        img = rgb.to(torch.uint8)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(os.path.join(images, f"pattern{i}.png"))
        pixels.append(img)
    x = torch.stack(pixels).double() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465], dtype=D).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616], dtype=D).view(1, 3, 1, 1)
    logits = model.double()((x - mean) / std)
    save_file({"logits": logits.float().contiguous()}, os.path.join(HERE, "resnet20_logits.safetensors"))


def main():
    resnet20_fixture()
    out = {}
    conv_cases(out)
    batchnorm_cases(out)
    small_op_cases(out)
    ttq_cases(out)
    block_cases(out)
    ttn_cases(out)
    sttn_cases(out)
    ternary_unit_cases(out)
    path = os.path.join(HERE, "ops.safetensors")
    save_file(out, path, metadata={"generator": "tests/golden/make_golden.py", "torch": torch.__version__})
    print(f"wrote {len(out)} tensors to {path}")


if __name__ == "__main__":
    main()
