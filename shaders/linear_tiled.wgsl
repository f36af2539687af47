// import: tile.wgsl
// linear_tiled.wgsl — the tiled family's fully connected layer (for GPUs): the entry points of
// linear.wgsl (same bindings and parameters), y = x·wᵀ + b and its gradients, as GEMMs staged in
// workgroup memory.
//
// Bindings (group 0), as linear.wgsl:
//   0 p   uniform  LinearParams { n, fin, fout }
//   1 x   storage read        [n, fin]
//   2 w   storage read        [fout, fin]
//   3 b   storage read        [fout]
//   4 y   storage read_write  [n, fout]
//   5 dy  storage read        [n, fout]
//   6 dx  storage read_write  [n, fin]
//   7 dw  storage read_write  [fout, fin]
//   8 db  storage read_write  [fout]
//
// GEMM view (rows × columns, reduced over the third index):
//   forward      y[r, o]  = b[o] + Σ_k w[o, k] · x[r, k]    rows o,  columns r, over k
//   grad_input   dx[r, k] = Σ_o w[o, k] · dy[r, o]          rows k,  columns r, over o
//   grad_weight  dw[o, k] = Σ_r dy[r, o] · x[r, k]          rows o,  columns k, over r;
//                db[o] = Σ_r dy[r, o], summed from the staged dy by the invocations of the first
//                column tile with tx = 0 (no extra reads)
// Tiling: a workgroup of WG = TILE_M·TILE_N/16 invocations computes a TILE_M × TILE_N tile;
// invocation li owns rows 4·ty .. 4·ty + 3 × columns 4·tx .. 4·tx + 3 of it (tx = li mod
// TILE_N/4). The reduction runs in slices of TILE_K staged into a_tile [TILE_K][TILE_M] and
// b_tile [TILE_K][TILE_N] (rows padded by one vec4 against bank conflicts), each staged so that
// consecutive invocations read consecutive addresses; then TILE_K rank-1 updates of the block.
// Grid: Groups folded to 2-D, t = wg.y · nwg.x + wg.x, row tiles fastest; t past the last tile
// returns (uniform per workgroup).
// Assumes (host-guaranteed): TILE_M and TILE_N multiples of 16, WG = TILE_M·TILE_N/16, TILE_K a
// multiple of 4 dividing WG. Workgroup memory is not zero-initialised (every staged element is
// written before it is read). Deterministic: fixed summation order, no atomics.

struct LinearParams { n: u32, fin: u32, fout: u32 }

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

// The workgroup's tile origin (m0, n0), or none past the last tile, for `rows` × `cols`.
fn origin(wg: vec3u, nwg: vec3u, rows: u32, cols: u32) -> vec3u {
    let tiles_m = (rows + TILE_M - 1u) / TILE_M;
    let t = wg.y * nwg.x + wg.x;
    let live = t < tiles_m * ((cols + TILE_N - 1u) / TILE_N);
    return vec3u((t % tiles_m) * TILE_M, (t / tiles_m) * TILE_N, u32(live));
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let o = origin(wg, nwg, p.fout, p.n);
    if (o.z == 0u) { return; }
    let row = li % TILE_K;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    for (var k0 = 0u; k0 < p.fin; k0 += TILE_K) {
        let k = k0 + row;
        for (var c = li / TILE_K; c < TILE_M; c += WG / TILE_K) {
            var v = 0.0;
            if (o.x + c < p.fout && k < p.fin) { v = w[(o.x + c) * p.fin + k]; }
            put_a(row, c, v);
        }
        for (var c = li / TILE_K; c < TILE_N; c += WG / TILE_K) {
            var v = 0.0;
            if (o.y + c < p.n && k < p.fin) { v = x[(o.y + c) * p.fin + k]; }
            put_b(row, c, v);
        }
        workgroupBarrier();
        mma(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var m = 0u; m < 4u; m++) {
        let oi = o.x + ty * 4u + m;
        if (oi >= p.fout) { break; }
        for (var j = 0u; j < 4u; j++) {
            let r = o.y + tx * 4u + j;
            if (r < p.n) { y[r * p.fout + oi] = b[oi] + acc[m][j]; }
        }
    }
}

@compute @workgroup_size(WG)
fn grad_input(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) li: u32) {
    let o = origin(wg, nwg, p.fin, p.n);
    if (o.z == 0u) { return; }
    let am = li % TILE_M;
    let row = li % TILE_K;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    for (var o0 = 0u; o0 < p.fout; o0 += TILE_K) {
        for (var r = li / TILE_M; r < TILE_K; r += WG / TILE_M) {
            var v = 0.0;
            if (o.x + am < p.fin && o0 + r < p.fout) { v = w[(o0 + r) * p.fin + o.x + am]; }
            put_a(r, am, v);
        }
        for (var c = li / TILE_K; c < TILE_N; c += WG / TILE_K) {
            var v = 0.0;
            if (o.y + c < p.n && o0 + row < p.fout) { v = dy[(o.y + c) * p.fout + o0 + row]; }
            put_b(row, c, v);
        }
        workgroupBarrier();
        mma(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var m = 0u; m < 4u; m++) {
        let k = o.x + ty * 4u + m;
        if (k >= p.fin) { break; }
        for (var j = 0u; j < 4u; j++) {
            let r = o.y + tx * 4u + j;
            if (r < p.n) { dx[r * p.fin + k] = acc[m][j]; }
        }
    }
}

@compute @workgroup_size(WG)
fn grad_weight(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) li: u32) {
    let o = origin(wg, nwg, p.fout, p.fin);
    if (o.z == 0u) { return; }
    let am = li % TILE_M;
    let bc = li % TILE_N;
    let tx = li % (TILE_N / 4u);
    let ty = li / (TILE_N / 4u);
    var acc: array<vec4f, 4>;
    var bias = vec4f(0.0);
    for (var r0 = 0u; r0 < p.n; r0 += TILE_K) {
        for (var r = li / TILE_M; r < TILE_K; r += WG / TILE_M) {
            var v = 0.0;
            if (o.x + am < p.fout && r0 + r < p.n) { v = dy[(r0 + r) * p.fout + o.x + am]; }
            put_a(r, am, v);
        }
        for (var r = li / TILE_N; r < TILE_K; r += WG / TILE_N) {
            var v = 0.0;
            if (o.y + bc < p.fin && r0 + r < p.n) { v = x[(r0 + r) * p.fin + o.y + bc]; }
            put_b(r, bc, v);
        }
        workgroupBarrier();
        mma(&acc, tx, ty);
        if (o.y == 0u && tx == 0u) {
            for (var k = 0u; k < TILE_K; k++) { bias += a_tile[k * (TILE_M / 4u + 1u) + ty]; }
        }
        workgroupBarrier();
    }
    for (var m = 0u; m < 4u; m++) {
        let oi = o.x + ty * 4u + m;
        if (oi >= p.fout) { break; }
        for (var j = 0u; j < 4u; j++) {
            let k = o.y + tx * 4u + j;
            if (k < p.fin) { dw[oi * p.fin + k] = acc[m][j]; }
        }
        if (o.y == 0u && tx == 0u) { db[oi] = bias[m]; }
    }
}
