// import: group.wgsl group_tree.wgsl|group_subgroup.wgsl
// ttn.wgsl — ternarization with a trained threshold and a truncated-Gaussian scale
// (He & Fan, arXiv 1810.01018), per layer.
//
// Bindings (group 0):
//   0 p       uniform  TtnParams { len }
//   1 w       storage read        [len]  latent full-precision weights
//   2 delta   storage read        [1]    trained threshold offset δ
//   3 fit     storage read_write  [8]    the truncated-Gaussian fit [μ, σ, δ', α, λ, a, inside, 0]
//   4 wq      storage read_write  [len]  α·T, T ∈ {−1, 0, +1}
//   5 gq      storage read        [len]  ∂L/∂wq
//   6 dw      storage read_write  [len]  ∂L/∂w
//   7 ddelta  storage read_write  [1]    ∂L/∂δ
//   8 partial storage read_write  [p.splits + 1]  per-range sums (the split reductions), then G
//
// stats (one workgroup of 256, launch one): μ and σ of the weights (two passes, population σ),
//   δ' = clamp(δ, 0, 3σ) (inside = 1 when δ is strictly inside), a = δ'/σ,
//   λ = φ(a)/(1 − Φ(a)) (inverse Mills ratio), α = μ + σ·λ: the mean of N(μ, σ²) truncated
//   above μ + δ'.
// quantize (one invocation per weight, 256 per workgroup, 2-D grid):
//   T = +1 where w > μ + δ', −1 where w < μ − δ', else 0; wq = α·T.
// backward (one workgroup of 256, launch one), with G = Σ g·T (group_sum of group.wgsl, a fixed order):
//   through T, straight-through with ∂T/∂w = 1/α (T stands for w/α), so this path gives g;
//   through α: ∂α/∂δ = λ' = λ(λ − a) when inside, else 0; ∂α/∂μ = 1;
//   ∂α/∂σ = λ − a·λ' when inside, else λ (a is fixed by the clip); ∂μ/∂w = 1/n;
//   ∂σ/∂w = (w − μ)/(nσ). So ∂L/∂w = g + G·(1/n + ∂α/∂σ·(w − μ)/(nσ)), ∂L/∂δ = G·∂α/∂δ.
//   The thresholds μ ± δ' also move with μ and δ, but T is piecewise constant there: no gradient.
// The tiled family splits large layers into p.splits contiguous ranges, one workgroup each, and
//   adds the ranges' sums in order with one invocation: mean_split, set_mean (fit[0] = μ),
//   var_split, set_fit (the rest of the fit); backward_split, set_g (partial[p.splits] = G and ∂L/∂δ),
//   then backward_apply, one invocation per weight.
// Φ uses the complementary error function of Numerical Recipes' erfcc (fractional error < 1.2e-7).

override WG: u32 = 256u;
override GROUP: u32 = 256u; // the reductions' workgroup (group.wgsl): a power of two

struct TtnParams { len: u32, splits: u32 }

@group(0) @binding(0) var<uniform> p: TtnParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> delta: array<f32>;
@group(0) @binding(3) var<storage, read_write> fit: array<f32>;
@group(0) @binding(4) var<storage, read_write> wq: array<f32>;
@group(0) @binding(5) var<storage, read> gq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> ddelta: array<f32>;
@group(0) @binding(8) var<storage, read_write> partial: array<f32>;

// Σ v over the workgroup; every invocation returns it.
fn total(li: u32, v: f32) -> f32 {
    return group_sum(li, vec4f(v, 0.0, 0.0, 0.0)).x;
}

fn erfc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + poly);
    return select(2.0 - r, r, x >= 0.0);
}

fn ternary(v: f32) -> f32 {
    let hi = fit[0] + fit[2];
    let lo = fit[0] - fit[2];
    return select(select(0.0, -1.0, v < lo), 1.0, v > hi);
}

// Σw, and Σ(w − mu)², over [start, end); every invocation returns them.
fn sum_w(li: u32, start: u32, end: u32) -> f32 {
    var s = 0.0;
    for (var i = start + li; i < end; i += GROUP) { s += w[i]; }
    return total(li, s);
}

fn sum_sq(li: u32, start: u32, end: u32, mu: f32) -> f32 {
    var v = 0.0;
    for (var i = start + li; i < end; i += GROUP) { v += (w[i] - mu) * (w[i] - mu); }
    return total(li, v);
}

// The fit from μ and Σ(w − μ)².
fn put_fit(mu: f32, sq: f32) {
    let sigma = max(sqrt(sq / f32(p.len)), 1e-12);
    let d = clamp(delta[0], 0.0, 3.0 * sigma);
    let a = d / sigma;
    let tail = 0.5 * erfc(a * 0.70710678);
    let lambda = 0.39894228 * exp(-0.5 * a * a) / tail;
    fit[0] = mu;
    fit[1] = sigma;
    fit[2] = d;
    fit[3] = mu + sigma * lambda;
    fit[4] = lambda;
    fit[5] = a;
    fit[6] = select(0.0, 1.0, delta[0] > 0.0 && delta[0] < 3.0 * sigma);
    fit[7] = 0.0;
}

@compute @workgroup_size(GROUP)
fn stats(@builtin(local_invocation_index) li: u32) {
    let mu = sum_w(li, 0u, p.len) / f32(p.len);
    let sq = sum_sq(li, 0u, p.len, mu);
    if (li == 0u) { put_fit(mu, sq); }
}

// Σ partial[0 .. p.splits] in order.
fn sum_partial() -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) { s += partial[k]; }
    return s;
}

@compute @workgroup_size(GROUP)
fn mean_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = sum_w(li, r.x, r.y);
    if (li == 0u) { partial[wg.x] = s; }
}

@compute @workgroup_size(1)
fn set_mean() {
    fit[0] = sum_partial() / f32(p.len);
}

@compute @workgroup_size(GROUP)
fn var_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = sum_sq(li, r.x, r.y, fit[0]);
    if (li == 0u) { partial[wg.x] = s; }
}

@compute @workgroup_size(1)
fn set_fit() {
    put_fit(fit[0], sum_partial());
}

@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    wq[i] = fit[3] * ternary(w[i]);
}

// G = Σ g·T over [start, end); every invocation returns it.
fn sum_gt(li: u32, start: u32, end: u32) -> f32 {
    var s = 0.0;
    for (var i = start + li; i < end; i += GROUP) { s += gq[i] * ternary(w[i]); }
    return total(li, s);
}

struct Slopes { dalpha_dsigma: f32, dlambda: f32, inside: bool }

fn slopes() -> Slopes {
    let lambda = fit[4];
    let a = fit[5];
    let inside = fit[6] > 0.5;
    let dlambda = lambda * (lambda - a);
    return Slopes(select(lambda, lambda - a * dlambda, inside), dlambda, inside);
}

fn dw_of(i: u32, g_alpha: f32, k: Slopes) -> f32 {
    let n = f32(p.len);
    return gq[i] + g_alpha * (1.0 / n + k.dalpha_dsigma * (w[i] - fit[0]) / (n * fit[1]));
}

@compute @workgroup_size(GROUP)
fn backward(@builtin(local_invocation_index) li: u32) {
    let g_alpha = sum_gt(li, 0u, p.len);
    let k = slopes();
    for (var i = li; i < p.len; i += GROUP) { dw[i] = dw_of(i, g_alpha, k); }
    if (li == 0u) { ddelta[0] = select(0.0, g_alpha * k.dlambda, k.inside); }
}

@compute @workgroup_size(GROUP)
fn backward_split(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let r = split_range(wg.x, p.splits, p.len);
    let s = sum_gt(li, r.x, r.y);
    if (li == 0u) { partial[wg.x] = s; }
}

@compute @workgroup_size(1)
fn set_g() {
    let g_alpha = sum_partial();
    let k = slopes();
    partial[p.splits] = g_alpha;
    ddelta[0] = select(0.0, g_alpha * k.dlambda, k.inside);
}

@compute @workgroup_size(WG)
fn backward_apply(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * nwg.x + wg.x) * WG + li;
    if (i >= p.len) { return; }
    dw[i] = dw_of(i, partial[p.splits], slopes());
}
