//! Whole ResNet basic blocks and STTN units built by the models' code, against PyTorch.

// Blocks hold batch norms, whose reductions run in the tiled family's two ways too.
op_checks!(@golden block, matches_pytorch_blocked, blocked);
op_checks!(@golden block, matches_pytorch_tiled, tiled);
op_checks!(@golden block, matches_pytorch_tiled_tree, tiled_tree);
