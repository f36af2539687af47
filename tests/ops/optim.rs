//! SGD with momentum and AdamW.

op_checks!(optim, golden);
