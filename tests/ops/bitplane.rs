//! Ternary activations as floats and bit-planes, and the popcount convolution.

op_checks!(bitplane);

use crate::{gpu, zeros};
use tern::internals::gpu::DType;
use tern::internals::ops::bitplane as op;
use tern::internals::ops::conv2d::Conv2dGeom;
use tern::internals::ops::packed_conv::{Epilogue, PackedWeights};

/// Each output's count lives in 16 bits: a convolution with 2^15 products per output or more is
/// refused by name, before anything runs.
#[test]
fn refuses_more_products_per_output_than_the_counts_hold() {
    let g = Conv2dGeom::new(&[1, 4096, 3, 3], &[8, 4096, 3, 3], 1, 1);
    let gpu = gpu();
    let x = zeros("layer9.x", &op::interleaved(g.input_shape()));
    let y = zeros("layer9.y", &op::interleaved(g.output_shape()));
    let planes = op::activation_planes(&g);
    let [pos, neg] = ["act_pos", "act_neg"].map(|n| gpu.tensor_of(n, &planes, DType::U32).unwrap());
    let (scale, shift) = (zeros("scale", &[g.cout]), zeros("shift", &[g.cout]));
    let weights = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &scale, wn: &scale };
    let e = Epilogue { scale: &scale, shift: &shift, relu: false, residual: None, accumulate: false };
    let err =
        op::forward(gpu, "layer9", &g, &x, (&pos, &neg), &weights, &e, &y, None).err().unwrap().to_string();
    assert!(err.contains("layer9/packed_bitplane") && err.contains("36864 products"), "{err}");
}

/// Packing the next unit's activations is refused by name where the kernel cannot (a 1×1
/// convolution runs packed_conv.wgsl's kernel), before anything runs.
#[test]
fn refuses_to_pack_the_next_unit_where_the_kernel_cannot() {
    let g = Conv2dGeom::new(&[2, 16, 4, 4], &[16, 16, 1, 1], 1, 0);
    let gpu = gpu();
    let x = zeros("unit.x", &op::interleaved(g.input_shape()));
    let y = zeros("unit.y", &op::interleaved(g.output_shape()));
    let planes = op::activation_planes(&g);
    let [pos, neg] = ["act_pos", "act_neg"].map(|n| gpu.tensor_of(n, &planes, DType::U32).unwrap());
    let (scale, shift) = (zeros("scale", &[g.cout]), zeros("shift", &[g.cout]));
    let weights = PackedWeights::Ternary { pos: &pos, neg: &neg, wp: &scale, wn: &scale };
    let e = Epilogue { scale: &scale, shift: &shift, relu: false, residual: None, accumulate: false };
    let next = op::NextPlanes { act_scale: &scale, act_shift: &shift, pos: &pos, neg: &neg };
    assert!(!op::packs_next(gpu, &g, &e));
    let err = op::forward(gpu, "unit", &g, &x, (&pos, &neg), &weights, &e, &y, Some(&next)).err().unwrap();
    assert!(
        err.to_string().contains("unit/packed_bitplane") && err.to_string().contains("next unit"),
        "{err}"
    );
}
