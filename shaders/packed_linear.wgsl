// packed_linear.wgsl — inference fully connected layer from bit-packed ternary weights (or f32
// weights), y = (Wp·Σ₊x − Wn·Σ₋x)·scale + shift, where shift carries the bias.
//
// Bindings (group 0):
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
// Weight i of [fout, fin] is bit i % 32 of word i / 32, rows unpadded (as in packed_conv.wgsl).
// Mapping: one workgroup of 64 per (output, 64 rows of the batch); the output, and so every
// weight word, is uniform across the workgroup; set bits are visited with firstTrailingBit.

override WG: u32 = 64u;

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

// The invocation's output feature o, batch row, and the offset r of that row in x (clamped to
// the last row, so out-of-range invocations read valid memory and store nothing).
struct Item { o: u32, row: u32, r: u32 }

fn item(wg: vec3u, nwg: vec3u, li: u32) -> Item {
    let g = wg.y * nwg.x + wg.x;
    let blocks = (p.n + WG - 1u) / WG;
    let row = (g % blocks) * WG + li;
    return Item(g / blocks, row, min(row, p.n - 1u) * p.fin);
}

@compute @workgroup_size(WG)
fn ternary(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
    let t = item(wg, nwg, li);
    let o = t.o;
    let row = t.row;
    let r = t.r;
    if (o >= p.fout) { return; }
    let first = o * p.fin;
    let last = first + p.fin;
    var sp = 0.0;
    var sn = 0.0;
    for (var word = first / 32u; word * 32u < last; word++) {
        let lo = max(first, word * 32u) - word * 32u;
        let hi = min(last, word * 32u + 32u) - word * 32u;
        let keep = select((1u << hi) - 1u, 0xffffffffu, hi == 32u) & ~((1u << lo) - 1u);
        var mp = pos[word] & keep;
        var mn = neg[word] & keep;
        let k0 = word * 32u - first;
        while (mp != 0u) {
            let b = firstTrailingBit(mp);
            mp &= mp - 1u;
            sp += x[r + k0 + b];
        }
        while (mn != 0u) {
            let b = firstTrailingBit(mn);
            mn &= mn - 1u;
            sn += x[r + k0 + b];
        }
    }
    let c = o * p.per_channel;
    if (row < p.n) { y[row * p.fout + o] = (wp[c] * sp - wn[c] * sn) * scale[o] + shift[o]; }
}

@compute @workgroup_size(WG)
fn dense(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
    let t = item(wg, nwg, li);
    let o = t.o;
    let row = t.row;
    let r = t.r;
    if (o >= p.fout) { return; }
    var acc = 0.0;
    for (var k = 0u; k < p.fin; k++) { acc += weight[o * p.fin + k] * x[r + k]; }
    if (row < p.n) { y[row * p.fout + o] = acc * scale[o] + shift[o]; }
}
