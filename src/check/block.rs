//! Whole layers built by the models' code, against PyTorch: a CIFAR ResNet basic block (identity
//! and option-A shortcut, full precision and TTQ) and a unit of STTN's ResNet with ternary
//! activations (BN → ternary activation → conv with STTN weights → BN, + shortcut), forward and
//! backward. No f64 reference of its own: a block is the composition of ops each held against
//! theirs; this check holds the composition (order, wiring, gradient joins) against PyTorch.

use super::{Case, Cases, TOL};
use crate::gpu::Gpu;
use crate::gpu::Var;
use crate::nn::layers::{BasicBlock, Layer, TernaryUnit};
use crate::nn::{Builder, Mode};
use crate::params::{HostTensor, ParamStore, Role, Slot};
use crate::quant::{QuantKind, Quantizer};
use anyhow::Result;
use std::sync::Arc;

/// Build `layer` (named `case`) on a store holding the golden's trainable values (running
/// statistics start at (0, 1), as in PyTorch), run forward and backward with the golden's dy,
/// and compare the output, dx, every parameter gradient and the updated running statistics.
fn check_layer(c: &mut Cases, layer: &Layer) -> Result<()> {
    let gpu = c.gpu;
    let store = ParamStore::new(gpu, layer.params(), 0)?;
    let mut host = Vec::new();
    for s in store.specs.iter().filter(|s| s.role != Role::State) {
        let (shape, data) = c.golden().get(&s.name)?;
        host.push(HostTensor { name: s.name.clone(), shape, data: super::to_f32(&data) });
    }
    store.write(gpu, Slot::Values, &host)?;
    let mut b = Builder::new(gpu, &store, Mode::Train);
    let x = c.golden_input("x")?;
    let x = Var { grad: Some(c.zeros("dx", x.shape())?), value: x };
    let y = layer.build(&mut b, &x)?;
    let (forward, backward, _) = b.finish();
    gpu.write(
        y.grad.as_ref().expect("training output has a gradient"),
        &super::to_f32(&c.golden_values("dy")?),
    )?;
    gpu.run(&[&forward, &backward])?;
    c.expect_golden(&[("y", &y.value), ("dx", x.grad.as_ref().expect("dx"))], TOL)?;
    for s in &store.specs {
        let p = store.get(&s.name)?;
        let (t, golden_name) = match &p.grad {
            Some(grad) => (grad.clone(), format!("{}.grad", s.name)),
            None => (p.value.clone(), s.name.clone()),
        };
        let want = c.golden().values(&golden_name)?;
        c.expect(&s.name, &t, &want, TOL)?;
    }
    Ok(())
}

/// The blocks block_fp, block_ttq, block_down_ttq and the units unit_sttn, unit_down_sttn.
pub fn golden(gpu: &Gpu) -> Result<Vec<Case>> {
    let cases = ["block_fp", "block_ttq", "block_down_ttq", "unit_sttn", "unit_down_sttn"];
    Cases::goldens(gpu, "block", &cases, |c, case| {
        let v: Vec<usize> = c.golden_values("geom")?.iter().map(|v| *v as usize).collect();
        let (cin, cout, stride) = (v[0], v[1], v[2]);
        // The 3×3 convolutions' kernels, and what ternary layers read (full precision: dense).
        let conv = crate::ops::conv2d::path(gpu, &super::conv2d::geom(1, cin, 8, 8, cout, 3, stride, 1));
        let ternary = case != "block_fp" && gpu.trains_on_masks();
        c.path(format!("{conv} {} {}", if ternary { "masks" } else { "dense" }, gpu.reductions().path()));
        let layer = if case.starts_with("unit") {
            let quant: Arc<dyn Quantizer> = QuantKind::Sttn.quantizer(0.05).into();
            Layer::TernaryUnit(TernaryUnit::new(case, 1, cin, cout, stride, &quant))
        } else {
            let kind = if v[3] == 1 { QuantKind::Ttq } else { QuantKind::Fp };
            let quant: Arc<dyn Quantizer> = kind.quantizer(0.05).into();
            Layer::Block(BasicBlock::new(case, cin, cout, stride, &quant))
        };
        check_layer(c, &layer)
    })
}
