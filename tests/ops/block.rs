//! Whole ResNet basic blocks and STTN units built by the models' code, against PyTorch.

use super::*;
use tern::check::block as op;

#[test]
fn matches_pytorch() {
    assert_passed(op::golden(gpu()));
}
