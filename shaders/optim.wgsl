// optim.wgsl — optimizers over the flat parameter buffer (every trainable tensor of a model
// lives in one buffer, so one dispatch updates them all).
//
// Bindings (group 0):
//   0 p       uniform  OptimParams (fixed for a run)
//   1 step    uniform  StepParams (rewritten by the host before each step)
//   2 param   storage read_write  [len]
//   3 grad    storage read        [len]
//   4 moment1 storage read_write  [len]  SGD velocity / Adam first moment
//   5 moment2 storage read_write  [len]  Adam second moment
//
// Elements [0, decay_end) get weight decay (conv and linear weights); the rest (batch-norm
// parameters, biases, quantizer scales and thresholds) do not. One invocation per element, 256 per
// workgroup, 2-D grid.
//
// sgd:  v = μ·v + (g + λ·w);  w −= lr·v            (PyTorch SGD, dampening 0)
// adam: decoupled weight decay (AdamW): w −= lr·λ·w, then w −= lr·m̂ / (√v̂ + ε)

override WG: u32 = 256u;

struct OptimParams { len: u32, decay_end: u32, momentum: f32, weight_decay: f32, beta1: f32, beta2: f32, eps: f32 }
// bias1 = 1 − β1^t and bias2 = 1 − β2^t for Adam's step t.
struct StepParams { lr: f32, bias1: f32, bias2: f32 }

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> moment1: array<f32>;
@group(0) @binding(5) var<storage, read_write> moment2: array<f32>;

fn element(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + li;
}

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.len) { return; }
    let decay = select(0.0, p.weight_decay, i < p.decay_end);
    let v = p.momentum * moment1[i] + grad[i] + decay * param[i];
    moment1[i] = v;
    param[i] -= step.lr * v;
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
    let i = element(wg, nwg, li);
    if (i >= p.len) { return; }
    let g = grad[i];
    let m = p.beta1 * moment1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * moment2[i] + (1.0 - p.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let decay = select(0.0, p.weight_decay, i < p.decay_end);
    let w = param[i] * (1.0 - step.lr * decay);
    param[i] = w - step.lr * (m / step.bias1) / (sqrt(v / step.bias2) + p.eps);
}
