//! TWN's statistics and quantization (its backward is straight-through: no kernel).

op_checks!(twn, tree);
