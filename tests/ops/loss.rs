//! Softmax cross-entropy and the loss/accuracy counters. Its gradient's finite-difference check
//! runs through the linear layer (linear.rs).

op_checks!(loss, golden, tree);
