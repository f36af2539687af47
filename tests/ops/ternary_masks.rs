//! Masks of quantized weights in both layouts, and the input gradient on the transposed masks.

use super::*;
use tern::internals::check::{conv2d as op, values};
use tern::internals::ops::packed_conv::{self, Identity};
use tern::internals::ops::ternary_masks::{self as masks, Layout, Masks};

op_checks!(ternary_masks);

/// Training on masks: the forward convolution on the forward masks and the input gradient on
/// the transposed ones against central differences of the reference forward, in both families.
#[test]
fn packed_gradients_match_finite_differences() {
    let g = op::geom(2, 5, 6, 7, 4, 3, 1, 1);
    let codes = tern::internals::check::packed_conv::codes(g.weight_shape().iter().product(), 11);
    let w: Vec<f64> = codes.iter().map(|&k| [-1.25, 0.0, 0.75][(k + 1) as usize]).collect();
    let (x, r) =
        (values(g.input_shape().iter().product(), 12), values(g.output_shape().iter().product(), 13));
    let (wt, xt, rt) = (
        upload("wq", &g.weight_shape(), &w),
        upload("x", &g.input_shape(), &x),
        upload("r", &g.output_shape(), &r),
    );
    let gt = masks::transposed(&g).unwrap();
    for gpu in families() {
        let (y, dx) = (zeros("y", &g.output_shape()), zeros("dx", &g.input_shape()));
        for (layout, geom, input, output) in
            [(Layout::Forward, &g, &xt, &y), (Layout::Transposed, &gt, &rt, &dx)]
        {
            let m = Masks::new(gpu, "m", &g.weight_shape(), layout).unwrap();
            let e = Identity::new(gpu, "conv", geom.cout).unwrap();
            let mut d = Vec::from(masks::write(gpu, "m", &wt, &m).unwrap());
            d.push(
                packed_conv::forward(gpu, "conv", geom, input, &m.weights(), &e.epilogue(false), output)
                    .unwrap(),
            );
            tern::internals::check::run(gpu, d).unwrap();
        }
        let family = gpu.family().name();
        tern::internals::check::assert_close_to_scale(
            &format!("{family} forward"),
            &download(&y),
            &op::forward(&g, &x, &w),
            1e-5,
        );
        fd_check(&format!("{family} dx"), &x, &download(&dx), |x| dot(&op::forward(&g, x, &w), &r));
    }
}
