// import: tile.wgsl packed_bits.wgsl
// packed_linear_tiled.wgsl — the tiled family's inference fully connected layer (for GPUs): the
// `ternary` and `dense` entry points of packed_linear.wgsl (same bindings and parameters),
// y = (x·wᵀ)·scale + shift with w from bit-packed ternary masks (+Wp / −Wn) or f32, as a GEMM
// staged in workgroup memory.
//
// Bindings (group 0), as packed_linear.wgsl:
//   0 p       uniform  PackedLinearParams { n, fin, fout, per_channel }
//   1 x       storage read        [n, fin]
//   2 pos     storage read        u32 words: bit i set ⇔ weight i is +Wp   (ternary)
//   3 neg     storage read        u32 words: bit i set ⇔ weight i is −Wn   (ternary)
//   4 wp      storage read        [1] or [fout] (p.per_channel)            (ternary)
//   5 wn      storage read        [1] or [fout]                            (ternary)
//   6 weight  storage read        [fout, fin] f32                          (dense)
//   7 scale   storage read        [fout]
//   8 shift   storage read        [fout]
//   9 y       storage read_write  [n, fout]
//
// Weight i of [fout, fin] is bit i % 32 of word i / 32, rows unpadded.
// GEMM: rows o (fout), columns the batch rows, reduced over fin in slices of TILE_K. A workgroup
// of WG = TILE_M·TILE_N/16 invocations computes a TILE_M × TILE_N tile; invocation li owns outputs
// 4·ty .. 4·ty + 3 × batch rows 4·tx .. 4·tx + 3 of it (tx = li mod TILE_N/4). Per slice:
//   a_tile [TILE_K][TILE_M]: ternary: each staging item decodes 4 consecutive inputs of one output
//     from 32 bits of each mask (funnel shift) into +Wp, 0 or −Wn; dense: f32 weights;
//   b_tile [TILE_K][TILE_N]: x, staged so that consecutive invocations read consecutive inputs of
//     one batch row (coalesced);
// then TILE_K rank-1 updates of the 4×4 block (rows padded by one vec4 against bank conflicts).
// Grid: Groups folded to 2-D, t = wg.y · nwg.x + wg.x, output tiles fastest; t past the last tile
// returns (uniform per workgroup).
// Assumes (host-guaranteed): TILE_M and TILE_N multiples of 16, WG = TILE_M·TILE_N/16, TILE_K a
// multiple of 4 dividing WG. Workgroup memory is not zero-initialised (every staged element is
// written before it is read). Deterministic: fixed summation order, no atomics.

struct PackedLinearParams { n: u32, fin: u32, fout: u32, per_channel: u32 }

@group(0) @binding(0) var<uniform> p: PackedLinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> neg: array<u32>;
@group(0) @binding(4) var<storage, read> wp: array<f32>;
@group(0) @binding(5) var<storage, read> wn: array<f32>;
@group(0) @binding(6) var<storage, read> weight: array<f32>;
@group(0) @binding(7) var<storage, read> scale: array<f32>;
@group(0) @binding(8) var<storage, read> shift: array<f32>;
@group(0) @binding(9) var<storage, read_write> y: array<f32>;

// Stage x[n0 .., k0 ..]: the staging invocation's input index (row of the slice) is li mod TILE_K.
fn stage_x(li: u32, n0: u32, k0: u32) {
    let row = li % TILE_K;
    let k = k0 + row;
    for (var c = li / TILE_K; c < TILE_N; c += WG / TILE_K) {
        let r = n0 + c;
        var v = 0.0;
        if (r < p.n && k < p.fin) { v = x[r * p.fin + k]; }
        b_tile[row * (TILE_N / 4u + 1u) + c / 4u][c % 4u] = v;
    }
}

fn store(m0: u32, n0: u32, tx: u32, ty: u32, acc: array<vec4f, 4>) {
    for (var m = 0u; m < 4u; m++) {
        let o = m0 + ty * 4u + m;
        if (o >= p.fout) { break; }
        for (var j = 0u; j < 4u; j++) {
            let r = n0 + tx * 4u + j;
            if (r < p.n) { y[r * p.fout + o] = acc[m][j] * scale[o] + shift[o]; }
        }
    }
}

@compute @workgroup_size(WG)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.fout + TILE_M - 1u) / TILE_M;
    let t = wg.y * nwg.x + wg.x;
    if (t >= tiles_m * ((p.n + TILE_N - 1u) / TILE_N)) { return; }
    let m0 = (t % tiles_m) * TILE_M;
    let n0 = (t / tiles_m) * TILE_N;
    var acc: array<vec4f, 4>;
    for (var k0 = 0u; k0 < p.fin; k0 += TILE_K) {
        stage_x(li, n0, k0);
        for (var e = li; e < TILE_M * TILE_K / 4u; e += WG) {
            let m = e % TILE_M;
            let seg = (e / TILE_M) * 4u;
            let o = m0 + m;
            let k = k0 + seg;
            var v = vec4f(0.0);
            if (o < p.fout && k < p.fin) {
                let count = min(4u, p.fin - k);
                let bp = bits32(o * p.fin + k, false);
                let bn = bits32(o * p.fin + k, true);
                let c = o * p.per_channel;
                for (var b = 0u; b < count; b++) {
                    v[b] = select(0.0, wp[c], ((bp >> b) & 1u) == 1u)
                         - select(0.0, wn[c], ((bn >> b) & 1u) == 1u);
                }
            }
            for (var b = 0u; b < 4u; b++) { put_a(seg + b, m, v[b]); }
        }
        workgroupBarrier();
        mma(&acc, li % (TILE_N / 4u), li / (TILE_N / 4u));
        workgroupBarrier();
    }
    store(m0, n0, li % (TILE_N / 4u), li / (TILE_N / 4u), acc);
}

@compute @workgroup_size(WG)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let tiles_m = (p.fout + TILE_M - 1u) / TILE_M;
    let t = wg.y * nwg.x + wg.x;
    if (t >= tiles_m * ((p.n + TILE_N - 1u) / TILE_N)) { return; }
    let m0 = (t % tiles_m) * TILE_M;
    let n0 = (t / tiles_m) * TILE_N;
    let row = li % TILE_K;
    var acc: array<vec4f, 4>;
    for (var k0 = 0u; k0 < p.fin; k0 += TILE_K) {
        stage_x(li, n0, k0);
        let k = k0 + row;
        for (var c = li / TILE_K; c < TILE_M; c += WG / TILE_K) {
            let o = m0 + c;
            var v = 0.0;
            if (o < p.fout && k < p.fin) { v = weight[o * p.fin + k]; }
            put_a(row, c, v);
        }
        workgroupBarrier();
        mma(&acc, li % (TILE_N / 4u), li / (TILE_N / 4u));
        workgroupBarrier();
    }
    store(m0, n0, li % (TILE_N / 4u), li / (TILE_N / 4u), acc);
}
