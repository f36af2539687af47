//! The two kernel families: every tiled entry point against the f64 CPU reference on shapes that
//! do not divide the tile sizes, both families bit-reproducible from run to run, the PyTorch
//! goldens and packed-vs-training-graph logits through the tiled family. The tests pick each
//! family explicitly (`Gpu::with_family`), whatever `--kernels`/`TERN_KERNELS` say.

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::*;
use std::sync::OnceLock;
use tern::gpu::{Family, Gpu, Tensor};
use tern::ops;
use tern::ops::conv2d::Conv2dGeom;

const TOL: f64 = 1e-4;
const FAMILIES: [Family; 2] = [Family::Blocked, Family::Tiled];

/// A handle on the test device running `family`.
fn on(family: Family) -> &'static Gpu {
    static HANDLES: [OnceLock<Gpu>; 2] = [OnceLock::new(), OnceLock::new()];
    HANDLES[family as usize].get_or_init(|| gpu().with_family(family))
}

fn geom(c: &Conv) -> Conv2dGeom {
    Conv2dGeom {
        n: c.n,
        cin: c.cin,
        h: c.h,
        w: c.w,
        cout: c.cout,
        kh: c.k,
        kw: c.k,
        stride: c.stride,
        pad: c.pad,
    }
}

/// Shapes that divide neither the 4×4 blocks nor any tile: more than one row tile (70 channels;
/// 1×1 so that sums stay short enough for the tolerance), channel slices with a remainder
/// (cin 12, 17), stride 2 and 3 with odd sizes (parity classes of unequal sizes), a 1×1
/// stride-2 convolution (classes that meet no tap), 5×5 kernels.
const CONV_SHAPES: &[Conv] = &[
    Conv { n: 1, cin: 1, h: 5, w: 5, cout: 1, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 3, h: 7, w: 9, cout: 5, k: 3, stride: 1, pad: 1 },
    Conv { n: 3, cin: 4, h: 8, w: 8, cout: 8, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 5, h: 9, w: 6, cout: 7, k: 1, stride: 1, pad: 0 },
    Conv { n: 2, cin: 6, h: 11, w: 10, cout: 3, k: 5, stride: 2, pad: 2 },
    Conv { n: 1, cin: 2, h: 6, w: 6, cout: 6, k: 3, stride: 3, pad: 0 },
    Conv { n: 2, cin: 5, h: 7, w: 7, cout: 6, k: 1, stride: 2, pad: 0 },
    Conv { n: 3, cin: 12, h: 13, w: 11, cout: 14, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 67, h: 9, w: 7, cout: 70, k: 1, stride: 1, pad: 0 },
    Conv { n: 2, cin: 17, h: 9, w: 9, cout: 33, k: 3, stride: 2, pad: 1 },
    Conv { n: 3, cin: 16, h: 16, w: 16, cout: 32, k: 3, stride: 2, pad: 1 },
];

/// forward, grad_input and grad_weight of `g` on `gpu`: (y, dx, dw).
fn conv_passes(gpu: &Gpu, g: &Conv2dGeom, x: &Tensor, w: &Tensor, dy: &Tensor) -> [Vec<f32>; 3] {
    let (y, dx, dw) =
        (zeros("y", &g.output_shape()), zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
    let mut p = ops::conv2d::grad_weight(gpu, "conv", g, x, dy, &dw).unwrap();
    p.push(ops::conv2d::forward(gpu, "conv", g, x, w, &y).unwrap());
    p.push(ops::conv2d::grad_input(gpu, "conv", g, dy, w, &dx).unwrap());
    run_programs(&[&p]);
    [&y, &dx, &dw].map(|t| gpu.read(t).unwrap())
}

#[test]
fn conv2d_matches_reference_in_both_families() {
    for (s, c) in CONV_SHAPES.iter().enumerate() {
        let g = geom(c);
        let x = values(c.n * c.cin * c.h * c.w, 10 + s as u64);
        let w = values(c.cout * c.cin * c.k * c.k, 20 + s as u64);
        let dy = values(c.n * c.cout * c.oh() * c.ow(), 30 + s as u64);
        let (xt, wt) = (upload("x", &g.input_shape(), &x), upload("w", &g.weight_shape(), &w));
        let dyt = upload("dy", &g.output_shape(), &dy);
        let (y, (dx, dw)) = (conv2d(c, &x, &w), conv2d_backward(c, &x, &w, &dy));
        for f in FAMILIES {
            let [yg, dxg, dwg] = conv_passes(on(f), &g, &xt, &wt, &dyt);
            let f = f.name();
            assert_close(&format!("{f} conv2d forward {c:?}"), &to_f64(&yg), &y, TOL);
            assert_close(&format!("{f} conv2d grad_input {c:?}"), &to_f64(&dxg), &dx, TOL);
            assert_close(&format!("{f} conv2d grad_weight {c:?}"), &to_f64(&dwg), &dw, TOL);
        }
    }
}
