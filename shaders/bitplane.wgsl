// bitplane.wgsl — the popcount convolution's counts and epilogue, shared by the `bitplane`
// entry points of packed_conv.wgsl (any adapter) and bitplane_lanes.wgsl (8-lane subgroups).
// Not a shader on its own: those files import it and declare what it reads: p
// (PackedConvParams), scale, shift, wp, wn, res4 and y4 (see packed_conv.wgsl).
//
// Bindings (group 0): none of its own.

const PLANE_ROWS: u32 = 8u;

// Wn = Wp (STTN's scales; the host binds one tensor for both): one signed count per output,
// half the popcounts: (w⁺&a⁺)|(w⁻&a⁻) are the +1 products, (w⁺&a⁻)|(w⁻&a⁺) the −1 products.
override SYMMETRIC: bool = false;

// An invocation's work: `block` output channels from co0 (the same for the whole workgroup)
// at output pixel (row, column) `rc` for one quad of 4 images (one vec4 of every word), the
// window's top-left pixel `corner` in the padded planes; invocations past the last item repeat
// it without storing (`live` false); `size` invocations per workgroup. With `pixels` (1 or 2,
// dividing ow) per item, `rc` is the first of the item's pixels along the row.
struct PlaneItem { co0: u32, quad: u32, rc: vec2u, corner: u32, live: bool }

fn plane_item(wg: vec3u, nwg: vec3u, li: u32, size: u32, block: u32, pixels: u32) -> PlaneItem {
    let group = wg.y * nwg.x + wg.x;
    let quads = (p.n + 3u) / 4u;
    let cols = p.ow / pixels;
    let items = p.oh * cols * quads;
    let item_groups = (items + size - 1u) / size;
    let unclamped = (group % item_groups) * size + li;
    let item = min(unclamped, items - 1u);
    let pixel = item / quads;
    let rc = vec2u(pixel / cols, (pixel % cols) * pixels);
    let corner = rc.x * p.stride * (p.w + 2u * p.pad) + rc.y * p.stride;
    return PlaneItem((group / item_groups) * block, item % quads, rc, corner, unclamped < items);
}

// One weight word pair (W+, W−) against the 4 images' activation words: the Wp count in the
// low 16 bits, the Wn count above (or, SYMMETRIC, the one signed count).
fn counts(wpos: u32, wneg: u32, ap: vec4u, an: vec4u) -> vec4i {
    let wp4 = vec4u(wpos);
    let wn4 = vec4u(wneg);
    if (SYMMETRIC) {
        return vec4i(countOneBits((wp4 & ap) | (wn4 & an))) - vec4i(countOneBits((wp4 & an) | (wn4 & ap)));
    }
    let sp = vec4i(countOneBits(wp4 & ap)) - vec4i(countOneBits(wp4 & an));
    let sn = vec4i(countOneBits(wn4 & ap)) - vec4i(countOneBits(wn4 & an));
    return sp + (sn << vec4u(16u));
}

// Output channel co's epilogue terms: (scale, shift, Wp, Wn); a channel past cout reads the last.
fn channel_terms(co: u32) -> vec4f {
    let c = min(co, p.cout - 1u);
    let s = c * p.per_channel;
    return vec4f(scale[c], shift[c], wp[s], wn[s]);
}

// Output channel co of the quad's 4 images at output pixel (row, column) `rc` from their packed
// counts and the channel's terms `k` (channel_terms), images innermost: conv·scale + shift, then
// the residual (`residual` 1: the identity, res4 of y4's shape; 2: option A, channels offset by
// res_pad_c), y's old value (`accumulate`), the ReLU (`relu`). Returns what it stored (zeros
// where it stores nothing).
fn store_images(co: u32, quad: u32, rc: vec2u, live: bool, acc: vec4i, k: vec4f,
                residual: u32, accumulate: bool, relu: bool) -> vec4f {
    if (!live || co >= p.cout) { return vec4f(0.0); }
    let quads = (p.n + 3u) / 4u;
    var conv: vec4f;
    if (SYMMETRIC) {
        conv = k.z * vec4f(acc);
    } else {
        let sp = (acc << vec4u(16u)) >> vec4u(16u);
        let sn = (acc - sp) >> vec4u(16u);
        conv = k.z * vec4f(sp) - k.w * vec4f(sn);
    }
    var v = conv * k.x + k.y;
    let at = ((co * p.oh + rc.x) * p.ow + rc.y) * quads + quad;
    if (residual == 1u) { v += res4[at]; }
    if (residual == 2u && co >= p.res_pad_c && co < p.res_pad_c + p.res_c) {
        let r = rc * p.res_stride;
        v += res4[(((co - p.res_pad_c) * p.res_h + r.x) * p.res_w + r.y) * quads + quad];
    }
    if (accumulate) { v += y4[at]; }
    if (relu) { v = max(v, vec4f(0.0)); }
    y4[at] = v;
    return v;
}
