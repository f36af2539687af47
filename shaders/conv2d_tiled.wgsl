// import: tile.wgsl
// conv2d_tiled.wgsl — the tiled family's 2-D convolution (for GPUs): the same three passes as
// conv2d.wgsl (NCHW, any kernel size, stride and zero padding, no bias), as implicit GEMMs whose
// operands are staged in workgroup memory.
//
// Bindings (group 0), as conv2d.wgsl:
//   0 p           uniform  Conv2dParams (the same struct as conv2d.wgsl)
//   1 x           storage read        [n, cin, h, w]         input
//   2 w           storage read        [cout, cin, kh, kw]    weights
//   3 y           storage read_write  [n, cout, oh, ow]      forward output
//   4 dy          storage read        [n, cout, oh, ow]      gradient of y
//   5 dx          storage read_write  [n, cin, h, w]         grad_input output
//   6 dw_partial  storage read_write  [splits, cout, cin*kh*kw] grad_weight partial sums
//
// GEMM view (rows × columns of output, reduced over the third index):
//   forward      y[co, q]  = Σ_tap Σ_ci w[co, ci, tap] · x[n, ci, q's window at tap]
//                rows cout, columns q = (n, r, c) over n·oh·ow
//   grad_input   dx[ci, q] = Σ_tap Σ_co w[co, ci, tap] · dy[n, co, (r + pad − i)/s, (c + pad − j)/s]
//                rows cin, columns the input positions of one stride parity class (below)
//   grad_weight  dw[co, k] = Σ_q dy[n, co, q] · x[n, ci, q's window at tap], k = (ci, tap)
//                rows cout, columns cin·kh·kw, reduced over n·oh·ow split into p.splits chunks
//
// Tiling (override constants, chosen by the host from the adapter's limits): a workgroup of
// WG = TILE_M·TILE_N/16 invocations computes a TILE_M × TILE_N output tile; invocation li owns the
// 4×4 block of rows 4·ty .. 4·ty + 3 and columns 4·tx .. 4·tx + 3 of the tile (tx = li mod
// TILE_N/4, ty = li div TILE_N/4). The reduction runs in slices of TILE_K: all invocations stage
// a slice into a_tile [TILE_K][TILE_M] and b_tile [TILE_K][TILE_N] (rows padded by one vec4
// against bank conflicts), a barrier, then each invocation does TILE_K rank-1 updates of its
// block from one vec4 of each tile (16 multiply-adds per 2 workgroup loads), and a barrier.
//
// forward and grad_input reduce over a flattened k, sliced TILE_K at a time whatever the channel
// count (a 3-channel layer is not padded to a slice per tap): forward k = tap · cin + ci,
// grad_input k = (a · taps_c + b) · cout + co. Each k is decoded once per workgroup into ktab
// (offsets and tap coordinates; two buffers, the next slice's filled while the current one is
// staged), so staging needs no division: a staging invocation's column (output or input
// position) is fixed (WG is a multiple of TILE_N) and decoded once, and consecutive invocations
// load consecutive positions (coalesced).
// grad_input splits the input positions into stride² parity classes ((r + pad) mod s,
// (c + pad) mod s); a class meets only the taps i ≡ (r + pad) mod s, j ≡ (c + pad) mod s, so no
// tap is visited that contributes nothing (stride 2: a quarter of the taps per class).
// Workgroups: class-major, then column tiles, then row tiles (tiles past a class's end return).
// grad_weight: workgroup (split, tile) reduces the positions of its chunk in slices of TILE_K
// positions; a staging invocation's position row is fixed (TILE_K divides WG) and decoded once
// per slice; the columns' (channel offset, tap) come from kinfo, filled once per workgroup. Each
// split writes its own slice of dw_partial and reduce.wgsl/sum_splits adds them in order. Within
// a chunk, each slice is summed on its own and then added to the running total (two-level sum).
//
// Grid: Groups, folded to 2-D (t = wg.y · nwg.x + wg.x); t past the last tile returns (uniform
// per workgroup). Row tiles run fastest, so neighbouring workgroups share their column operand.
// Assumes (host-guaranteed): TILE_M and TILE_N multiples of 16, WG = TILE_M·TILE_N/16, TILE_K a
// multiple of 4 dividing WG. Workgroup memory is not zero-initialised: every staged element is
// written before it is read. Deterministic: one invocation sums each output (or split) in a
// fixed order; no atomics.

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

// forward, grad_input: the reduction index k of the current and the next slice, decoded once per
// workgroup (two buffers of TILE_K: the next slice's is filled while the current one is staged).
var<workgroup> ktab: array<vec4i, 2u * TILE_K>;
// grad_weight: per tile column k, (ci · h · w, tap row − pad, tap column − pad, k exists).
var<workgroup> kinfo: array<vec4i, TILE_N>;

// k-table entries past the reduction's end: a row offset that puts every window outside.
const OUTSIDE: i32 = -1073741824;

// Fill buffer `buf` of ktab with forward's entries for k = k0 .. k0 + TILE_K − 1 (tap-major:
// k = tap · cin + ci): (x offset ci·h·w + i·w + j from the window corner, i, j, weight offset
// ci·kh·kw + tap).
fn forward_ktab(li: u32, buf: u32, k0: u32) {
    let kk = p.kh * p.kw;
    for (var r = li; r < TILE_K; r += WG) {
        let k = k0 + r;
        var e = vec4i(0, OUTSIDE, 0, 0);
        if (k < p.cin * kk) {
            let tap = k / p.cin;
            let ci = k % p.cin;
            let i = tap / p.kw;
            let j = tap % p.kw;
            e = vec4i(i32(ci * p.h * p.w + i * p.w + j), i32(i), i32(j), i32(ci * kk + tap));
        }
        ktab[buf * TILE_K + r] = e;
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let out_hw = p.oh * p.ow;
    let positions = p.n * out_hw;
    let tiles_m = (p.cout + TILE_M - 1u) / TILE_M;
    let t = wg.y * nwg.x + wg.x;
    if (t >= tiles_m * ((positions + TILE_N - 1u) / TILE_N)) { return; }
    let m0 = (t % tiles_m) * TILE_M;
    let n0 = (t / tiles_m) * TILE_N;
    let k_total = p.cin * p.kh * p.kw;
    // Staging: this invocation's column (an output position) and its window's corner.
    let col = li % TILE_N;
    let q = n0 + col;
    let q_ok = q < positions;
    let qc = min(q, positions - 1u);
    let rc = qc % out_hw;
    let r0 = i32((rc / p.ow) * p.stride) - i32(p.pad);
    let c0 = i32((rc % p.ow) * p.stride) - i32(p.pad);
    let corner = i32((qc / out_hw) * p.cin * p.h * p.w) + r0 * i32(p.w) + c0;
    let am = li % TILE_M;
    let co_a = m0 + am;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    forward_ktab(li, 0u, 0u);
    workgroupBarrier();
    for (var s = 0u; s * TILE_K < k_total; s++) {
        let k0 = s * TILE_K;
        let cur = (s % 2u) * TILE_K;
        for (var row = li / TILE_N; row < TILE_K; row += WG / TILE_N) {
            let e = ktab[cur + row];
            let r = r0 + e.y;
            let c = c0 + e.z;
            var v = 0.0;
            if (q_ok && r >= 0 && r < i32(p.h) && c >= 0 && c < i32(p.w)) { v = x[u32(corner + e.x)]; }
            put_b(row, col, v);
        }
        for (var row = li / TILE_M; row < TILE_K; row += WG / TILE_M) {
            var v = 0.0;
            if (co_a < p.cout && k0 + row < k_total) { v = w[co_a * k_total + u32(ktab[cur + row].w)]; }
            put_a(row, am, v);
        }
        forward_ktab(li, 1u - s % 2u, k0 + TILE_K);
        workgroupBarrier();
        mma(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var jj = 0u; jj < 4u; jj++) {
        let qq = n0 + tx * 4u + jj;
        if (qq >= positions) { break; }
        let base = (qq / out_hw) * p.cout * out_hw + qq % out_hw;
        for (var m = 0u; m < 4u; m++) {
            let co = m0 + ty * 4u + m;
            if (co < p.cout) { y[base + co * out_hw] = acc[m][jj]; }
        }
    }
}

// The stride parity class (rho_r, rho_c) of grad_input: its input rows r have
// (r + pad) mod s = rho_r, the first being r_first, `rows` of them per image (columns alike), and
// it meets the taps i = rho_r + s·a (a < taps_r), j = rho_c + s·b (b < taps_c).
struct Parity {
    rho_r: u32, rho_c: u32,
    r_first: u32, c_first: u32,
    rows: u32, cols: u32,
    taps_r: u32, taps_c: u32,
}

fn parity(index: u32) -> Parity {
    let s = p.stride;
    var c: Parity;
    c.rho_r = index / s;
    c.rho_c = index % s;
    c.r_first = (c.rho_r + s - p.pad % s) % s;
    c.c_first = (c.rho_c + s - p.pad % s) % s;
    c.rows = select(0u, (p.h - c.r_first + s - 1u) / s, c.r_first < p.h);
    c.cols = select(0u, (p.w - c.c_first + s - 1u) / s, c.c_first < p.w);
    c.taps_r = select(0u, (p.kh - c.rho_r + s - 1u) / s, c.rho_r < p.kh);
    c.taps_c = select(0u, (p.kw - c.rho_c + s - 1u) / s, c.rho_c < p.kw);
    return c;
}

// Fill buffer `buf` of ktab with grad_input's entries of class c for k = k0 .. k0 + TILE_K − 1
// (k = (a · taps_c + b) · cout + co): (dy offset co·oh·ow − a·ow − b from the class position's
// own output position, −a, −b, weight offset co·cin·kh·kw + tap).
fn grad_input_ktab(li: u32, buf: u32, k0: u32, c: Parity) {
    for (var r = li; r < TILE_K; r += WG) {
        let k = k0 + r;
        var e = vec4i(0, OUTSIDE, 0, 0);
        if (k < c.taps_r * c.taps_c * p.cout) {
            let tl = k / p.cout;
            let co = k % p.cout;
            let a = tl / c.taps_c;
            let b = tl % c.taps_c;
            let tap = (c.rho_r + p.stride * a) * p.kw + c.rho_c + p.stride * b;
            e = vec4i(i32(co * p.oh * p.ow) - i32(a * p.ow + b), -i32(a), -i32(b),
                      i32(co * p.cin * p.kh * p.kw + tap));
        }
        ktab[buf * TILE_K + r] = e;
    }
}

@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let s = p.stride;
    let in_hw = p.h * p.w;
    let out_hw = p.oh * p.ow;
    // Every class gets the grid of the largest: ⌈h/s⌉ × ⌈w/s⌉ positions per image.
    let tiles_m = (p.cin + TILE_M - 1u) / TILE_M;
    let class_max = p.n * ((p.h + s - 1u) / s) * ((p.w + s - 1u) / s);
    let per_class = tiles_m * ((class_max + TILE_N - 1u) / TILE_N);
    let t = wg.y * nwg.x + wg.x;
    if (t >= per_class * s * s) { return; }
    let c = parity(t / per_class);
    let m0 = (t % per_class % tiles_m) * TILE_M;
    let n0 = (t % per_class / tiles_m) * TILE_N;
    let class_positions = p.n * c.rows * c.cols;
    if (n0 >= class_positions) { return; }
    let k_total = c.taps_r * c.taps_c * p.cout;
    // Staging: this invocation's column (an input position of the class) and the output
    // position (R, C) that its tap (rho_r, rho_c) reads; tap (a, b) reads (R − a, C − b).
    let col = li % TILE_N;
    let q = n0 + col;
    let q_ok = q < class_positions;
    let qc = min(q, class_positions - 1u);
    let uv = qc % (c.rows * c.cols);
    let big_r = i32((c.r_first + s * (uv / c.cols) + p.pad - c.rho_r) / s);
    let big_c = i32((c.c_first + s * (uv % c.cols) + p.pad - c.rho_c) / s);
    let at = i32((qc / (c.rows * c.cols)) * p.cout * out_hw) + big_r * i32(p.ow) + big_c;
    let am = li % TILE_M;
    let ci_a = m0 + am;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    grad_input_ktab(li, 0u, 0u, c);
    workgroupBarrier();
    for (var sl = 0u; sl * TILE_K < k_total; sl++) {
        let k0 = sl * TILE_K;
        let cur = (sl % 2u) * TILE_K;
        for (var row = li / TILE_N; row < TILE_K; row += WG / TILE_N) {
            let e = ktab[cur + row];
            let orow = big_r + e.y;
            let ocol = big_c + e.z;
            var v = 0.0;
            if (q_ok && orow >= 0 && orow < i32(p.oh) && ocol >= 0 && ocol < i32(p.ow)) {
                v = dy[u32(at + e.x)];
            }
            put_b(row, col, v);
        }
        for (var row = li / TILE_M; row < TILE_K; row += WG / TILE_M) {
            var v = 0.0;
            if (ci_a < p.cin && k0 + row < k_total) {
                v = w[u32(ktab[cur + row].w) + ci_a * p.kh * p.kw];
            }
            put_a(row, am, v);
        }
        grad_input_ktab(li, 1u - sl % 2u, k0 + TILE_K, c);
        workgroupBarrier();
        mma(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var jj = 0u; jj < 4u; jj++) {
        let qq = n0 + tx * 4u + jj;
        if (qq >= class_positions) { break; }
        let o = qq % (c.rows * c.cols);
        let r = c.r_first + s * (o / c.cols);
        let cc = c.c_first + s * (o % c.cols);
        let base = (qq / (c.rows * c.cols)) * p.cin * in_hw + r * p.w + cc;
        for (var m = 0u; m < 4u; m++) {
            let ci = m0 + ty * 4u + m;
            if (ci >= p.cin) { continue; }
            let i = base + ci * in_hw;
            if (p.accumulate == 1u) { dx[i] += acc[m][jj]; } else { dx[i] = acc[m][jj]; }
        }
    }
}

@compute @workgroup_size(WG)
fn grad_weight(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let kk = p.kh * p.kw;
    let k_total = p.cin * kk;
    let out_hw = p.oh * p.ow;
    let in_hw = p.h * p.w;
    let positions = p.n * out_hw;
    let tiles_m = (p.cout + TILE_M - 1u) / TILE_M;
    let per_split = tiles_m * ((k_total + TILE_N - 1u) / TILE_N);
    let t = wg.y * nwg.x + wg.x;
    if (t >= per_split * p.splits) { return; }
    let split = t / per_split;
    let m0 = (t % per_split % tiles_m) * TILE_M;
    let n0 = (t % per_split / tiles_m) * TILE_N;
    let chunk = (positions + p.splits - 1u) / p.splits;
    let q_begin = min(split * chunk, positions);
    let q_end = min(q_begin + chunk, positions);
    for (var c = li; c < TILE_N; c += WG) {
        let k = n0 + c;
        let kc = min(k, k_total - 1u);
        let tap = kc % kk;
        kinfo[c] = vec4i(i32((kc / kk) * in_hw), i32(tap / p.kw) - i32(p.pad),
                         i32(tap % p.kw) - i32(p.pad), select(0, 1, k < k_total));
    }
    workgroupBarrier();
    let row = li % TILE_K;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    for (var qs = q_begin; qs < q_end; qs += TILE_K) {
        // Staging: this invocation's position (row of the slice) for every column it loads.
        let q = qs + row;
        let q_ok = q < q_end;
        let qc = min(q, positions - 1u);
        let rc = qc % out_hw;
        let img = qc / out_hw;
        let rs = i32((rc / p.ow) * p.stride);
        let cs = i32((rc % p.ow) * p.stride);
        let x_img = img * p.cin * in_hw;
        let dy_at = img * p.cout * out_hw + rc;
        for (var c = li / TILE_K; c < TILE_M; c += WG / TILE_K) {
            let co = m0 + c;
            var v = 0.0;
            if (q_ok && co < p.cout) { v = dy[dy_at + co * out_hw]; }
            put_a(row, c, v);
        }
        for (var c = li / TILE_K; c < TILE_N; c += WG / TILE_K) {
            let ki = kinfo[c];
            let r = rs + ki.y;
            let cc = cs + ki.z;
            var v = 0.0;
            if (q_ok && ki.w == 1 && r >= 0 && r < i32(p.h) && cc >= 0 && cc < i32(p.w)) {
                v = x[x_img + u32(ki.x) + u32(r) * p.w + u32(cc)];
            }
            put_b(row, c, v);
        }
        workgroupBarrier();
        // Two-level sum: each slice's TILE_K products first, then the slices in order, so the
        // rounding error grows with chunk / TILE_K + TILE_K terms rather than the chunk length.
        var part: array<vec4f, 4>;
        mma(&part, tx, ty);
        for (var m = 0u; m < 4u; m++) { acc[m] += part[m]; }
        workgroupBarrier();
    }
    let out_base = split * p.cout * k_total;
    for (var m = 0u; m < 4u; m++) {
        let co = m0 + ty * 4u + m;
        if (co >= p.cout) { break; }
        for (var jj = 0u; jj < 4u; jj++) {
            let k = n0 + tx * 4u + jj;
            if (k < k_total) { dw_partial[out_base + co * k_total + k] = acc[m][jj]; }
        }
    }
}
