//! The packed convolution: ternary bitmasks and dense weights, with the fused epilogue.

op_checks!(packed_conv);
