//! Masks of quantized weights in both layouts, and the input gradient on the transposed masks.

op_checks!(ternary_masks);
