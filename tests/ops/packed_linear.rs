//! The packed fully connected layer: ternary (per-layer and per-output scales) and dense.

op_checks!(packed_linear);
