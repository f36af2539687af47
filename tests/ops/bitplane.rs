//! Ternary activations as floats and bit-planes, and the popcount convolution.

op_checks!(bitplane);
