// conv2d.wgsl — 2-D convolution, NCHW, any kernel size, stride and zero padding; no bias
// (batch norm follows every convolution in our models).
//
// Bindings (group 0):
//   0 p           uniform  Conv2dParams
//   1 x           storage read        [n, cin, h, w]         input
//   2 w           storage read        [cout, cin, kh, kw]    weights
//   3 y           storage read_write  [n, cout, oh, ow]      forward output
//   4 dy          storage read        [n, cout, oh, ow]      gradient of y
//   5 dx          storage read_write  [n, cin, h, w]         grad_input output
//   6 dw_partial  storage read_write  [splits, cout, cin*kh*kw] grad_weight partial sums
//
// Every entry point is an implicit GEMM with a 4×4 register block per invocation: 4 output
// channels × 4 consecutive positions of the flattened (n, row, col) index, so each loaded weight
// and each loaded activation feeds 4 multiply-adds. Invocations run along positions fastest, so
// neighbours read neighbouring activations and share weights. Workgroup: WG (64) invocations,
// 1-D; the grid may be folded to 2-D (index = (wg.y * nwg.x + wg.x) * WG + local index).
// forward and grad_input share the block's prologue (`block`), its multiply-add (`mac`) and its
// stores (`store_y`, `store_dx`). The accumulators are indexed by constants only: a computed index would
// send the whole block to memory (llvmpipe then writes it lane by lane). With p.accumulate,
// grad_input adds to dx (a residual branch's first convolution adds to the shortcut's gradient).
// Where subgroups have 8 lanes or more, conv2d_lanes.wgsl runs the 3×3 convolutions instead: it
// shares each weight load across a subgroup.
//
// grad_weight sums over n·oh·ow, split into p.splits contiguous chunks; each chunk writes its own
// slice of dw_partial and reduce.wgsl/sum_splits adds the slices in order: deterministic, no atomics.

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, splits: u32,
    accumulate: u32, // grad_input: add to dx instead of storing
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw_partial: array<f32>;

override WG: u32 = 64u;

// The invocation's register block: 4 channels from ch0 (output channels for forward, input
// channels for grad_input) × 4 consecutive positions from pos0 of the flattened (n, row, col)
// index over an image plane of hw = rows × cols. Positions run fastest across invocations.
struct Block {
    ch0: u32,
    pos0: u32,
    n: vec4u,     // image of each position (the last position repeated past the end)
    row: vec4u,
    col: vec4u,
}

fn block(wg: vec3u, nwg: vec3u, li: u32, positions: u32, cols: u32, hw: u32) -> Block {
    let id = (wg.y * nwg.x + wg.x) * WG + li;
    let pos_blocks = (positions + 3u) / 4u;
    var b: Block;
    b.ch0 = (id / pos_blocks) * 4u;
    b.pos0 = (id % pos_blocks) * 4u;
    for (var j = 0u; j < 4u; j++) {
        let q = min(b.pos0 + j, positions - 1u);
        let rc = q % hw;
        b.n[j] = q / hw;
        b.row[j] = rc / cols;
        b.col[j] = rc % cols;
    }
    return b;
}

// Offsets of channel ch0 + m's 4 positions in an NCHW tensor of `channels` planes of hw
// elements, and which exist.
fn offsets(b: Block, m: u32, positions: u32, channels: u32, hw: u32) -> array<vec2u, 4> {
    var r: array<vec2u, 4>;
    let ok = b.ch0 + m < channels;
    let q = vec4u(b.pos0) + vec4u(0u, 1u, 2u, 3u);
    let o = (b.n * channels + b.ch0 + m) * hw + q % hw;
    let live = vec4<bool>(ok) & (q < vec4u(positions));
    r[0] = vec2u(o.x, u32(live.x));
    r[1] = vec2u(o.y, u32(live.y));
    r[2] = vec2u(o.z, u32(live.z));
    r[3] = vec2u(o.w, u32(live.w));
    return r;
}

fn store_y(b: Block, m: u32, v: vec4f, positions: u32) {
    let o = offsets(b, m, positions, p.cout, p.oh * p.ow);
    if (o[0].y == 1u) { y[o[0].x] = v.x; }
    if (o[1].y == 1u) { y[o[1].x] = v.y; }
    if (o[2].y == 1u) { y[o[2].x] = v.z; }
    if (o[3].y == 1u) { y[o[3].x] = v.w; }
}

fn put_dx(o: vec2u, v: f32) {
    if (o.y == 0u) { return; }
    if (p.accumulate == 1u) {
        dx[o.x] += v;
    } else {
        dx[o.x] = v;
    }
}

fn store_dx(b: Block, m: u32, v: vec4f, positions: u32) {
    let o = offsets(b, m, positions, p.cin, p.h * p.w);
    put_dx(o[0], v.x);
    put_dx(o[1], v.y);
    put_dx(o[2], v.z);
    put_dx(o[3], v.w);
}

// acc[m] += w[wi + m·stride] · v for the block's `rows` channels that exist (unrolled: llvmpipe
// vectorises straight-line code best).
fn mac(acc: ptr<function, array<vec4f, 4>>, wi: u32, stride: u32, rows: u32, v: vec4f) {
    (*acc)[0] += w[wi] * v;
    if (rows > 1u) { (*acc)[1] += w[wi + stride] * v; }
    if (rows > 2u) { (*acc)[2] += w[wi + 2u * stride] * v; }
    if (rows > 3u) { (*acc)[3] += w[wi + 3u * stride] * v; }
}

// y[n, co, r, c] = Σ_{ci, i, j} w[co, ci, i, j] · x[n, ci, r·s − pad + i, c·s − pad + j]
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let out_hw = p.oh * p.ow;
    let positions = p.n * out_hw;
    let b = block(wg, nwg, li, positions, p.ow, out_hw);
    let co0 = b.ch0;
    if (co0 >= p.cout) { return; }
    let rows = min(4u, p.cout - co0);
    let in_hw = p.h * p.w;
    let kk = p.kh * p.kw;
    let base = b.n * p.cin * in_hw;
    let r0 = vec4i(b.row * p.stride) - i32(p.pad);
    let c0 = vec4i(b.col * p.stride) - i32(p.pad);
    var acc: array<vec4f, 4>;
    for (var i = 0u; i < p.kh; i++) {
        for (var jj = 0u; jj < p.kw; jj++) {
            var off: vec4u;
            var ok: vec4f;
            for (var j = 0u; j < 4u; j++) {
                let r = r0[j] + i32(i);
                let c = c0[j] + i32(jj);
                let inside = r >= 0 && r < i32(p.h) && c >= 0 && c < i32(p.w);
                ok[j] = select(0.0, 1.0, inside);
                off[j] = select(0u, base[j] + u32(r) * p.w + u32(c), inside);
            }
            var wi = co0 * p.cin * kk + i * p.kw + jj;
            let stride_co = p.cin * kk;
            for (var ci = 0u; ci < p.cin; ci++) {
                mac(&acc, wi, stride_co, rows, vec4f(x[off[0]], x[off[1]], x[off[2]], x[off[3]]) * ok);
                off += vec4u(in_hw);
                wi += kk;
            }
        }
    }
    store_y(b, 0u, acc[0], positions);
    store_y(b, 1u, acc[1], positions);
    store_y(b, 2u, acc[2], positions);
    store_y(b, 3u, acc[3], positions);
}

// dx[n, ci, r, c] = Σ_{co, i, j} w[co, ci, i, j] · dy[n, co, (r + pad − i)/s, (c + pad − j)/s]
// over the (i, j) for which the division is exact and the output position exists.
@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let in_hw = p.h * p.w;
    let positions = p.n * in_hw;
    let b = block(wg, nwg, li, positions, p.w, in_hw);
    let ci0 = b.ch0;
    if (ci0 >= p.cin) { return; }
    let rows = min(4u, p.cin - ci0);
    let out_hw = p.oh * p.ow;
    let kk = p.kh * p.kw;
    let base = b.n * p.cout * out_hw;
    let r = vec4i(b.row) + i32(p.pad);
    let c = vec4i(b.col) + i32(p.pad);
    let s = i32(p.stride);
    var acc: array<vec4f, 4>;
    for (var i = 0u; i < p.kh; i++) {
        for (var jj = 0u; jj < p.kw; jj++) {
            var off: vec4u;
            var ok: vec4f;
            for (var j = 0u; j < 4u; j++) {
                let rr = r[j] - i32(i);
                let cc = c[j] - i32(jj);
                let inside = rr >= 0 && cc >= 0 && rr % s == 0 && cc % s == 0
                    && rr / s < i32(p.oh) && cc / s < i32(p.ow);
                ok[j] = select(0.0, 1.0, inside);
                off[j] = select(0u, base[j] + u32(rr / s) * p.ow + u32(cc / s), inside);
            }
            if (all(ok == vec4f(0.0))) { continue; }
            var wi = ci0 * kk + i * p.kw + jj;
            for (var co = 0u; co < p.cout; co++) {
                mac(&acc, wi, kk, rows, vec4f(dy[off[0]], dy[off[1]], dy[off[2]], dy[off[3]]) * ok);
                off += vec4u(out_hw);
                wi += p.cin * kk;
            }
        }
    }
    store_dx(b, 0u, acc[0], positions);
    store_dx(b, 1u, acc[1], positions);
    store_dx(b, 2u, acc[2], positions);
    store_dx(b, 3u, acc[3], positions);
}

// dw[co, ci, i, j] = Σ_{n, r, c} dy[n, co, r, c] · x[n, ci, r·s − pad + i, c·s − pad + j],
// for the chunk of (n, r, c) that this invocation's split owns.
@compute @workgroup_size(WG)
fn grad_weight(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let id = (wg.y * nwg.x + wg.x) * WG + li;
    let kk = p.kh * p.kw;
    let k_total = p.cin * kk;
    let k_blocks = (k_total + 3u) / 4u;
    let co_blocks = (p.cout + 3u) / 4u;
    let k0 = (id % k_blocks) * 4u;
    let co0 = ((id / k_blocks) % co_blocks) * 4u;
    let split = id / (k_blocks * co_blocks);
    if (split >= p.splits) { return; }
    let out_hw = p.oh * p.ow;
    let in_hw = p.h * p.w;
    let positions = p.n * out_hw;
    let chunk = (positions + p.splits - 1u) / p.splits;
    let q_begin = split * chunk;
    let q_end = min(q_begin + chunk, positions);

    // Per k: channel offset and kernel tap.
    var ci_off: vec4u;
    var ki: vec4i;
    var kj: vec4i;
    for (var j = 0u; j < 4u; j++) {
        let k = min(k0 + j, k_total - 1u);
        ci_off[j] = (k / kk) * in_hw;
        ki[j] = i32((k % kk) / p.kw) - i32(p.pad);
        kj[j] = i32(k % p.kw) - i32(p.pad);
    }
    var acc: array<vec4f, 4>;
    for (var q = q_begin; q < q_end; q++) {
        let n = q / out_hw;
        let rc = q % out_hw;
        let rs = i32((rc / p.ow) * p.stride);
        let cs = i32((rc % p.ow) * p.stride);
        let xb = n * p.cin * in_hw;
        var xv: vec4f;
        for (var j = 0u; j < 4u; j++) {
            let rr = rs + ki[j];
            let cc = cs + kj[j];
            let inside = rr >= 0 && rr < i32(p.h) && cc >= 0 && cc < i32(p.w);
            xv[j] = select(0.0, x[select(0u, xb + ci_off[j] + u32(rr) * p.w + u32(cc), inside)], inside);
        }
        let gb = n * p.cout * out_hw + rc;
        acc[0] += dy[gb + co0 * out_hw] * xv;
        if (co0 + 1u < p.cout) { acc[1] += dy[gb + (co0 + 1u) * out_hw] * xv; }
        if (co0 + 2u < p.cout) { acc[2] += dy[gb + (co0 + 2u) * out_hw] * xv; }
        if (co0 + 3u < p.cout) { acc[3] += dy[gb + (co0 + 3u) * out_hw] * xv; }
    }
    let out_base = split * p.cout * k_total;
    store_dw(out_base, co0, 0u, acc[0], k0, k_total);
    store_dw(out_base, co0, 1u, acc[1], k0, k_total);
    store_dw(out_base, co0, 2u, acc[2], k0, k_total);
    store_dw(out_base, co0, 3u, acc[3], k0, k_total);
}

fn store_dw(out_base: u32, co0: u32, m: u32, v: vec4f, k0: u32, k_total: u32) {
    if (co0 + m >= p.cout) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (k0 + j < k_total) {
            dw_partial[out_base + (co0 + m) * k_total + k0 + j] = v[j];
        }
    }
}
