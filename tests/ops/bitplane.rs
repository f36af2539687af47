//! Ternary activations as floats and bit-planes, and the popcount convolution.

op_checks!(bitplane);

use crate::{gpu, zeros};
use tern::internals::gpu::DType;
use tern::internals::ops::bitplane as op;
use tern::internals::ops::conv2d::Conv2dGeom;
use tern::internals::ops::packed_conv::Epilogue;

use tern::internals::gpu::Tensor;

/// Zeroed inputs of a bit-plane convolution `g` named after `layer`: x, y (interleaved), the
/// activation planes (pos, neg) and per-channel terms, which serve as the weights' scales too.
struct Inputs {
    x: Tensor,
    y: Tensor,
    pos: Tensor,
    neg: Tensor,
    terms: Tensor,
}

impl Inputs {
    fn new(layer: &str, g: &Conv2dGeom) -> Inputs {
        let planes = op::activation_planes(g);
        let [pos, neg] = ["act_pos", "act_neg"].map(|n| gpu().tensor_of(n, &planes, DType::U32).unwrap());
        Inputs {
            x: zeros(&format!("{layer}.x"), &op::interleaved(g.input_shape())),
            y: zeros(&format!("{layer}.y"), &op::interleaved(g.output_shape())),
            pos,
            neg,
            terms: zeros("terms", &[g.cout]),
        }
    }

    /// Weights that reach no kernel (the calls are refused first): the activation planes stand
    /// in for the weight planes and quads.
    fn weights(&self) -> op::WeightPlanes<'_> {
        op::WeightPlanes {
            pos: &self.pos,
            neg: &self.neg,
            quads: &self.pos,
            wp: &self.terms,
            wn: &self.terms,
        }
    }

    fn epilogue(&self) -> Epilogue<'_> {
        Epilogue { scale: &self.terms, shift: &self.terms, relu: false, residual: None, accumulate: false }
    }
}

/// Each output's count lives in 16 bits: a convolution with 2^15 products per output or more is
/// refused by name, before anything runs.
#[test]
fn refuses_more_products_per_output_than_the_counts_hold() {
    let g = Conv2dGeom::new(&[1, 4096, 3, 3], &[8, 4096, 3, 3], 1, 1);
    let i = Inputs::new("layer9", &g);
    let (planes, e) = ((&i.pos, &i.neg), i.epilogue());
    let err = op::forward(gpu(), "layer9", &g, &i.x, planes, &i.weights(), &e, &i.y, None).err().unwrap();
    assert!(
        err.to_string().contains("layer9/packed_bitplane") && err.to_string().contains("36864 products"),
        "{err}"
    );
}

/// Packing the next unit's activations is refused by name where the kernel cannot (a 1×1
/// convolution runs packed_conv.wgsl's kernel), before anything runs.
#[test]
fn refuses_to_pack_the_next_unit_where_the_kernel_cannot() {
    let g = Conv2dGeom::new(&[2, 16, 4, 4], &[16, 16, 1, 1], 1, 0);
    let i = Inputs::new("unit", &g);
    let (planes, e) = ((&i.pos, &i.neg), i.epilogue());
    let next = op::NextPlanes { act_scale: &i.terms, act_shift: &i.terms, pos: &i.pos, neg: &i.neg };
    assert!(!op::packs_next(gpu(), &g, &e));
    let err =
        op::forward(gpu(), "unit", &g, &i.x, planes, &i.weights(), &e, &i.y, Some(&next)).err().unwrap();
    assert!(
        err.to_string().contains("unit/packed_bitplane") && err.to_string().contains("next unit"),
        "{err}"
    );
}

/// A float convolution writes its output interleaved only through the lanes kernels and without
/// residual: elsewhere it is refused by name, before anything runs.
#[test]
fn refuses_an_interleaved_float_output_where_the_kernel_cannot() {
    use tern::internals::ops::packed_conv;
    let g = Conv2dGeom::new(&[2, 16, 4, 4], &[16, 16, 1, 1], 1, 0);
    let i = Inputs::new("stem", &g);
    let x = zeros("stem.x_nchw", &g.input_shape());
    assert!(!packed_conv::writes_interleaved(gpu(), &g));
    let err =
        packed_conv::forward_interleaved(gpu(), "stem", &g, &x, &i.weights().packed(), &i.epilogue(), &i.y)
            .err()
            .unwrap();
    assert!(err.to_string().contains("stem") && err.to_string().contains("interleaved output"), "{err}");
}
