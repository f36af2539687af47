//! The option-A shortcut. Its PyTorch goldens are part of `block`.

use super::*;
use tern::internals::check::shortcut::{self as op, Shortcut};
use tern::internals::check::values;
use tern::internals::ops::shortcut::{self as kernel, output_shape};

op_checks!(shortcut);

/// 3 → 7 channels, stride 2.
#[test]
fn gradient_matches_finite_differences() {
    let s = Shortcut { input: [2, 3, 6, 5], cout: 7, stride: 2 };
    let (x, out) = (distinct(180), output_shape(&s.input, s.cout, s.stride));
    let r = values(out.iter().product(), 13);
    let (rt, dx) = (upload("dy", &out, &r), zeros("dx", &s.input));
    run([kernel::backward(gpu(), "sc", &rt, &dx, 2).unwrap()]);
    fd_check("shortcut dx", &x, &download(&dx), |v| dot(&op::forward(v, &s), &r));
}
