//! Layers: each declares its parameters and records its forward and backward kernels.
//! Parameter names follow PyTorch's CIFAR ResNets (conv1.weight, layer1.0.bn2.running_var, ...).

use super::graph::Builder;
use crate::gpu::{Dispatch, Gpu, Program, Tensor, Var};
use crate::ops::batchnorm::{BatchNormTensors, Fused, Pool, Residual};
use crate::ops::packed_conv::Identity;
use crate::ops::ternary_masks::{self, Layout, Masks};
use crate::ops::{self, conv2d::Conv2dGeom};
use crate::params::{Init, ParamSpec};
use crate::quant::{QuantKind, Quantizer};
use anyhow::Result;
use std::sync::Arc;

pub enum Layer {
    Conv(Conv),
    BatchNorm(BatchNorm),
    Relu(String),
    MaxPool { name: String, k: usize, stride: usize },
    GlobalAvgPool(String),
    Linear(Linear),
    Block(BasicBlock),
    TernaryUnit(TernaryUnit),
}

impl Layer {
    pub fn params(&self) -> Vec<ParamSpec> {
        match self {
            Layer::Conv(c) => c.params(),
            Layer::BatchNorm(b) => b.params(),
            Layer::Linear(l) => l.params(),
            Layer::Block(b) => b.params(),
            Layer::TernaryUnit(u) => u.params(),
            Layer::Relu(_) | Layer::MaxPool { .. } | Layer::GlobalAvgPool(_) => Vec::new(),
        }
    }

    pub fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        match self {
            Layer::Conv(c) => c.build(b, x),
            Layer::BatchNorm(n) => n.build(b, x),
            Layer::Relu(name) => relu(b, name, x),
            Layer::MaxPool { name, k, stride } => max_pool(b, name, x, *k, *stride),
            Layer::GlobalAvgPool(name) => global_avg_pool(b, name, x),
            Layer::Linear(l) => l.build(b, x),
            Layer::Block(blk) => blk.build(b, x),
            Layer::TernaryUnit(u) => u.build(b, x),
        }
    }

    /// The weight layers (convolutions and linears), blocks expanded, in model order.
    pub fn weight_layers(&self) -> Vec<(&str, &Arc<dyn Quantizer>)> {
        match self {
            Layer::Conv(c) => vec![(c.name.as_str(), &c.quant)],
            Layer::Linear(l) => vec![(l.name.as_str(), &l.quant)],
            Layer::Block(b) => {
                vec![(b.conv1.name.as_str(), &b.conv1.quant), (b.conv2.name.as_str(), &b.conv2.quant)]
            }
            Layer::TernaryUnit(u) => vec![(u.conv.name.as_str(), &u.conv.quant)],
            _ => Vec::new(),
        }
    }
}

/// Build `layers` in order, fusing each batch norm with the ReLU and the 2×2 max pool or global
/// average pool that follow it (one statistics pass, one normalising pass, and a two-pass
/// backward; the ReLU's and pool's inputs are never stored).
pub fn build_all(layers: &[Layer], b: &mut Builder, x: &Var) -> Result<Var> {
    let mut x = x.clone();
    // A convolution's batch-norm partials, for the batch norm right after it.
    let mut conv_stats = None;
    let mut i = 0;
    while i < layers.len() {
        if let Layer::BatchNorm(bn) = &layers[i] {
            let relu = matches!(layers.get(i + 1), Some(Layer::Relu(_)));
            let next = layers.get(i + 1 + usize::from(relu));
            let pool = match next {
                Some(Layer::MaxPool { k: 2, stride: 2, .. }) if x.value.shape()[2] >= 2 => Pool::Max2,
                Some(Layer::GlobalAvgPool(_)) => Pool::Avg,
                _ => Pool::None,
            };
            let f = Fused { relu, pool, residual: Residual::None };
            x = bn.build_fused(b, &x, &f, None, false, conv_stats.take().as_ref())?;
            i += 1 + usize::from(relu) + usize::from(pool != Pool::None);
            continue;
        }
        if let (Layer::Conv(conv), Some(Layer::BatchNorm(_))) = (&layers[i], layers.get(i + 1)) {
            (x, conv_stats) = conv.build_with(b, &x, false, true, None)?;
            i += 1;
            continue;
        }
        x = layers[i].build(b, &x)?;
        i += 1;
    }
    Ok(x)
}

fn extra_refs(b: &Builder, q: &dyn Quantizer, layer: &str, weight: &Var) -> Result<Vec<Var>> {
    q.extra_params(layer, weight.value.shape()).iter().map(|s| b.param(&s.name)).collect()
}

/// Convolution without bias; its weights go through the layer's quantizer.
pub struct Conv {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub quant: Arc<dyn Quantizer>,
}

impl Conv {
    fn params(&self) -> Vec<ParamSpec> {
        let fan_in = self.cin * self.k * self.k;
        let shape = [self.cout, self.cin, self.k, self.k];
        let mut p = vec![ParamSpec::new(
            format!("{}.weight", self.name),
            &shape,
            Init::KaimingNormal { fan_in },
            true,
        )];
        p.extend(self.quant.extra_params(&self.name, &shape));
        p
    }

    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        Ok(self.build_with(b, x, false, false, None)?.0)
    }

    /// With `accumulate`, the input gradient is added to what x.grad holds. With `stats` (a
    /// batch norm follows, training), the forward also writes the output's batch-norm partials
    /// where its kernels can (`conv2d::forward_with_stats`), returned for the batch norm. With
    /// `bn_relu` (where `reads_bn`), x holds that batch norm's input and the convolution reads
    /// its ReLU output, computed on load.
    fn build_with(
        &self,
        b: &mut Builder,
        x: &Var,
        accumulate: bool,
        stats: bool,
        bn_relu: Option<&BatchNormTensors>,
    ) -> Result<(Var, Option<Tensor>)> {
        let s = x.value.shape();
        let g = Conv2dGeom::new(s, &[self.cout, self.cin, self.k, self.k], self.stride, self.pad);
        let w = b.param(&format!("{}.weight", self.name))?;
        let q =
            self.quant.build(b.gpu, &self.name, &w, &extra_refs(b, self.quant.as_ref(), &self.name, &w)?)?;
        b.forward.extend(q.forward);
        b.after_update.extend(q.after_update);
        let y = b.act(&format!("{}.out", self.name), &g.output_shape())?;
        let packed = self.packed(b.gpu);
        let with_stats = match stats && b.training() && !packed {
            true => {
                ops::conv2d::forward_with_stats(b.gpu, &self.name, &g, &x.value, &q.wq, &y.value, bn_relu)?
            }
            false => None,
        };
        let (forward, partial) = match with_stats {
            Some((d, partial)) => (vec![d], Some(partial)),
            None if packed => (self.forward_on_masks(b.gpu, &g, &x.value, &q.wq, &y.value)?, None),
            None => {
                let d = ops::conv2d::forward_with(b.gpu, &self.name, &g, &x.value, &q.wq, &y.value, bn_relu)?;
                (vec![d], None)
            }
        };
        b.forward.extend_from(forward);
        if let (Some(dy), Some(gq)) = (&y.grad, &q.gq) {
            let mut bw = ops::conv2d::grad_weight_with(b.gpu, &self.name, &g, &x.value, dy, gq, bn_relu)?;
            bw.extend(q.backward);
            if let Some(dx) = &x.grad {
                // The input gradient on masks needs one scale per layer: each row of the
                // transposed weights mixes every output channel.
                let on_masks = packed && !self.quant.per_channel_scales();
                bw.extend_from(match ternary_masks::transposed(&g).filter(|_| on_masks) {
                    Some(gt) => self.grad_input_on_masks(b.gpu, &gt, dy, &q.wq, dx, accumulate)?,
                    None => {
                        vec![ops::conv2d::grad_input_into(b.gpu, &self.name, &g, dy, &q.wq, dx, accumulate)?]
                    }
                });
            }
            b.push_backward(bw);
        }
        Ok((y, partial))
    }

    /// The forward convolution on the forward masks of wq, written first.
    fn forward_on_masks(
        &self,
        gpu: &Gpu,
        g: &Conv2dGeom,
        x: &Tensor,
        wq: &Tensor,
        y: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let m = Masks::new(gpu, &self.name, &g.weight_shape(), Layout::Forward)?;
        let mut d = Vec::from(ternary_masks::write(gpu, &self.name, wq, &m)?);
        let e = Identity::new(gpu, &self.name, g.cout)?;
        d.push(ops::packed_conv::forward(gpu, &self.name, g, x, &m.weights(), &e.epilogue(false), y)?);
        Ok(d)
    }

    /// The input gradient as the convolution `gt` of dy on the transposed masks of wq, written
    /// first; with `accumulate`, added to what dx holds.
    fn grad_input_on_masks(
        &self,
        gpu: &Gpu,
        gt: &Conv2dGeom,
        dy: &Tensor,
        wq: &Tensor,
        dx: &Tensor,
        accumulate: bool,
    ) -> Result<Vec<Dispatch>> {
        let label = format!("{}/grad_input", self.name);
        let m = Masks::new(gpu, &self.name, wq.shape(), Layout::Transposed)?;
        let mut d = Vec::from(ternary_masks::write(gpu, &label, wq, &m)?);
        let e = Identity::new(gpu, &label, gt.cout)?;
        d.push(ops::packed_conv::forward(gpu, &label, gt, dy, &m.weights(), &e.epilogue(accumulate), dx)?);
        Ok(d)
    }

    /// Whether this convolution of input `shape` can read a batch norm's ReLU output from the
    /// batch norm's input (`build_with`'s `bn_relu`): its lanes kernels can, the others not.
    fn reads_bn(&self, gpu: &Gpu, shape: &[usize]) -> bool {
        let g = Conv2dGeom::new(shape, &[self.cout, self.cin, self.k, self.k], self.stride, self.pad);
        ops::conv2d::lanes(gpu, &g) && !self.packed(gpu)
    }

    /// Whether the forward convolution (and, where `ternary_masks::transposed` allows, the input
    /// gradient) reads bit masks of the quantized weights instead of the f32 weights.
    fn packed(&self, gpu: &Gpu) -> bool {
        self.quant.kind() != QuantKind::Fp && gpu.trains_on_masks()
    }
}

pub struct BatchNorm {
    pub name: String,
    pub c: usize,
}

impl BatchNorm {
    fn params(&self) -> Vec<ParamSpec> {
        let (n, c) = (&self.name, &[self.c]);
        vec![
            ParamSpec::new(format!("{n}.weight"), c, Init::Const(1.0), false),
            ParamSpec::new(format!("{n}.bias"), c, Init::Const(0.0), false),
            ParamSpec::state(format!("{n}.running_mean"), c, Init::Const(0.0)),
            ParamSpec::state(format!("{n}.running_var"), c, Init::Const(1.0)),
        ]
    }

    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        self.build_fused(b, x, &Fused::PLAIN, None, false, None)
    }

    /// This layer's tensors in one graph.
    fn state(&self, b: &Builder) -> Result<BnState> {
        let n = &self.name;
        Ok(BnState {
            gamma: b.param(&format!("{n}.weight"))?,
            beta: b.param(&format!("{n}.bias"))?,
            running_mean: b.param(&format!("{n}.running_mean"))?,
            running_var: b.param(&format!("{n}.running_var"))?,
            mean: b.tensor(&format!("{n}.mean"), &[self.c])?,
            invstd: b.tensor(&format!("{n}.invstd"), &[self.c])?,
        })
    }

    /// Training: batch norm + ReLU whose output only the next convolution reads, through its
    /// kernels (`Conv::reads_bn`): the statistics (from `conv_stats`, x's convolution's
    /// partials, where given) and the backward, but no normalising pass. Returns the state for
    /// that convolution's `bn_relu` and the activation as it sees it: x's values, and a
    /// gradient of its own that its input gradient fills and this backward reads.
    fn build_read_by_conv(
        &self,
        b: &mut Builder,
        x: &Var,
        conv_stats: Option<&Tensor>,
    ) -> Result<(BnState, Var)> {
        let n = &self.name;
        let s = self.state(b)?;
        let t = s.tensors();
        let pool = Pool::None;
        b.forward.extend_from(ops::batchnorm::train_statistics(b.gpu, n, &x.value, &t, pool, conv_stats)?);
        let grad = b.tensor(&format!("{n}.out.grad"), x.value.shape())?;
        if let (Some(dx), Some(dg), Some(db)) = (&x.grad, &s.gamma.grad, &s.beta.grad) {
            let f = Fused { relu: true, pool, residual: Residual::None };
            let bw = ops::batchnorm::fused_backward(
                b.gpu, n, &x.value, &x.value, &grad, dx, &t, dg, db, &f, None, false,
            )?;
            b.push_backward(Program { dispatches: bw });
        }
        let a = Var { value: x.value.clone(), grad: Some(grad) };
        Ok((s, a))
    }

    /// Batch norm fused with `f` (ReLU, pooling, residual add). `dres` receives the residual's
    /// gradient; with `accumulate` the input gradient is added to what x.grad holds;
    /// `conv_stats`: the partials of x's statistics its convolution wrote (`Conv::build_with`).
    fn build_fused(
        &self,
        b: &mut Builder,
        x: &Var,
        f: &Fused,
        dres: Option<&Tensor>,
        accumulate: bool,
        conv_stats: Option<&Tensor>,
    ) -> Result<Var> {
        let n = &self.name;
        let s = self.state(b)?;
        let t = s.tensors();
        let (gamma, beta) = (&s.gamma, &s.beta);
        let y = b.act(&format!("{n}.out"), &ops::batchnorm::output_shape(x.value.shape(), f.pool))?;
        if !b.training() {
            b.forward.extend_from(ops::batchnorm::fused_forward_eval(b.gpu, n, &x.value, &y.value, &t, f)?);
            return Ok(y);
        }
        b.forward.extend_from(ops::batchnorm::fused_forward_train(
            b.gpu, n, &x.value, &y.value, &t, f, conv_stats,
        )?);
        if let (Some(dy), Some(dx), Some(dg), Some(db)) = (&y.grad, &x.grad, &gamma.grad, &beta.grad) {
            let bw = ops::batchnorm::fused_backward(
                b.gpu, n, &x.value, &y.value, dy, dx, &t, dg, db, f, dres, accumulate,
            )?;
            b.push_backward(Program { dispatches: bw });
        }
        Ok(y)
    }
}

fn relu(b: &mut Builder, name: &str, x: &Var) -> Result<Var> {
    let y = b.act(&format!("{name}.out"), x.value.shape())?;
    b.forward.push(ops::activation::relu_forward(b.gpu, name, &x.value, &y.value)?);
    if let (Some(dy), Some(dx)) = (&y.grad, &x.grad) {
        let bw = ops::activation::relu_backward(b.gpu, name, &x.value, dy, dx)?;
        b.push_backward(Program { dispatches: vec![bw] });
    }
    Ok(y)
}

fn max_pool(b: &mut Builder, name: &str, x: &Var, k: usize, stride: usize) -> Result<Var> {
    let s = x.value.shape();
    let out = ops::pool::max_out;
    let y = b.act(&format!("{name}.out"), &[s[0], s[1], out(s[2], k, stride), out(s[3], k, stride)])?;
    b.forward.push(ops::pool::max_forward(b.gpu, name, &x.value, &y.value, k, stride)?);
    if let (Some(dy), Some(dx)) = (&y.grad, &x.grad) {
        let bw = ops::pool::max_backward(b.gpu, name, &x.value, dy, dx, k, stride)?;
        b.push_backward(Program { dispatches: vec![bw] });
    }
    Ok(y)
}

fn global_avg_pool(b: &mut Builder, name: &str, x: &Var) -> Result<Var> {
    let s = x.value.shape();
    let y = b.act(&format!("{name}.out"), &s[..2])?;
    b.forward.push(ops::pool::avg_forward(b.gpu, name, &x.value, &y.value)?);
    if let (Some(dy), Some(dx)) = (&y.grad, &x.grad) {
        b.push_backward(Program { dispatches: vec![ops::pool::avg_backward(b.gpu, name, dy, dx)?] });
    }
    Ok(y)
}

/// Fully connected layer with bias; input [n, ...] is flattened.
pub struct Linear {
    pub name: String,
    pub fin: usize,
    pub fout: usize,
    pub quant: Arc<dyn Quantizer>,
}

impl Linear {
    fn params(&self) -> Vec<ParamSpec> {
        let bound = 1.0 / (self.fin as f32).sqrt();
        let mut p = vec![
            ParamSpec::new(
                format!("{}.weight", self.name),
                &[self.fout, self.fin],
                Init::Uniform { bound },
                true,
            ),
            ParamSpec::new(format!("{}.bias", self.name), &[self.fout], Init::Uniform { bound }, false),
        ];
        p.extend(self.quant.extra_params(&self.name, &[self.fout, self.fin]));
        p
    }

    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        let n = &self.name;
        let (w, bias) = (b.param(&format!("{n}.weight"))?, b.param(&format!("{n}.bias"))?);
        let q = self.quant.build(b.gpu, n, &w, &extra_refs(b, self.quant.as_ref(), n, &w)?)?;
        b.forward.extend(q.forward);
        b.after_update.extend(q.after_update);
        let batch = x.value.shape()[0];
        let y = b.act(&format!("{n}.out"), &[batch, self.fout])?;
        b.forward.push(ops::linear::forward(b.gpu, n, &x.value, &q.wq, &bias.value, &y.value)?);
        if let (Some(dy), Some(gq), Some(db)) = (&y.grad, &q.gq, &bias.grad) {
            let mut bw = Program::default();
            bw.push(ops::linear::grad_weight(b.gpu, n, &x.value, dy, gq, db)?);
            bw.extend(q.backward);
            if let Some(dx) = &x.grad {
                bw.push(ops::linear::grad_input(b.gpu, n, dy, &q.wq, dx)?);
            }
            b.push_backward(bw);
        }
        Ok(y)
    }
}

/// CIFAR ResNet basic block (He et al. 2016): conv-bn-relu-conv-bn, plus the identity or the
/// option-A shortcut, then relu.
/// A batch norm's tensors in one graph: parameters (gradients when training), running
/// statistics, and the batch statistics its training forward saves.
struct BnState {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    mean: Tensor,
    invstd: Tensor,
}

impl BnState {
    fn tensors(&self) -> BatchNormTensors<'_> {
        BatchNormTensors {
            gamma: &self.gamma.value,
            beta: &self.beta.value,
            running_mean: &self.running_mean.value,
            running_var: &self.running_var.value,
            mean: &self.mean,
            invstd: &self.invstd,
        }
    }
}

pub struct BasicBlock {
    pub name: String,
    pub conv1: Conv,
    pub bn1: BatchNorm,
    pub conv2: Conv,
    pub bn2: BatchNorm,
    pub stride: usize,
}

impl BasicBlock {
    pub fn new(name: &str, cin: usize, cout: usize, stride: usize, quant: &Arc<dyn Quantizer>) -> BasicBlock {
        let conv = |n: &str, cin, stride| Conv {
            name: format!("{name}.{n}"),
            cin,
            cout,
            k: 3,
            stride,
            pad: 1,
            quant: quant.clone(),
        };
        BasicBlock {
            name: name.into(),
            conv1: conv("conv1", cin, stride),
            bn1: BatchNorm { name: format!("{name}.bn1"), c: cout },
            conv2: conv("conv2", cout, 1),
            bn2: BatchNorm { name: format!("{name}.bn2"), c: cout },
            stride,
        }
    }

    fn params(&self) -> Vec<ParamSpec> {
        [self.conv1.params(), self.bn1.params(), self.conv2.params(), self.bn2.params()].concat()
    }

    /// conv1 → BN + ReLU → conv2 → BN + shortcut + ReLU, the batch norms fused with what
    /// follows them. The second batch norm's backward writes the shortcut's gradient into the
    /// block input's gradient, and conv1's input gradient is added to it (no join kernel).
    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        // conv1's backward runs after bn2's (programs replay in reverse): it adds to x.grad.
        let (h, stats) = self.conv1.build_with(b, x, true, true, None)?;
        // In training conv2 reads bn1's ReLU output from bn1's input where its kernels can.
        let (h, stats) = if b.training() && self.conv2.reads_bn(b.gpu, h.value.shape()) {
            let (bn1, a) = self.bn1.build_read_by_conv(b, &h, stats.as_ref())?;
            self.conv2.build_with(b, &a, false, true, Some(&bn1.tensors()))?
        } else {
            let f = Fused { relu: true, pool: Pool::None, residual: Residual::None };
            let h = self.bn1.build_fused(b, &h, &f, None, false, stats.as_ref())?;
            self.conv2.build_with(b, &h, false, true, None)?
        };
        shortcut_unit(b, &self.bn2, &h, stats.as_ref(), x, self.stride, true)
    }
}

/// BN(branch) + shortcut(x) [→ ReLU], its backward writing the shortcut's gradient into x.grad.
fn shortcut_unit(
    b: &mut Builder,
    bn: &BatchNorm,
    branch: &Var,
    conv_stats: Option<&Tensor>,
    x: &Var,
    stride: usize,
    relu: bool,
) -> Result<Var> {
    let identity = stride == 1 && x.value.shape() == branch.value.shape();
    let residual = if identity { Residual::Identity(&x.value) } else { Residual::OptionA(&x.value) };
    let f = Fused { relu, pool: Pool::None, residual };
    let scratch;
    let dres = match &x.grad {
        Some(g) => g,
        None if b.training() => {
            scratch = b.tensor(&format!("{}.shortcut.grad", bn.name), x.value.shape())?;
            &scratch
        }
        None => &x.value,
    };
    bn.build_fused(b, branch, &f, Some(dres), false, conv_stats)
}

/// A unit of STTN's ResNet (Xu et al. 2020): BN → ternary activation → conv → BN, plus the
/// identity or option-A shortcut; a basic block is two units.
pub struct TernaryUnit {
    pub name: String,
    pub bn_in: BatchNorm,
    pub conv: Conv,
    pub bn: BatchNorm,
    pub stride: usize,
}

impl TernaryUnit {
    /// Unit `k` (1 or 2) of `block`: layer names block.bn{k}_in, block.conv{k}, block.bn{k}.
    pub fn new(
        block: &str,
        k: usize,
        cin: usize,
        cout: usize,
        stride: usize,
        quant: &Arc<dyn Quantizer>,
    ) -> TernaryUnit {
        TernaryUnit {
            name: format!("{block}.unit{k}"),
            bn_in: BatchNorm { name: format!("{block}.bn{k}_in"), c: cin },
            conv: Conv {
                name: format!("{block}.conv{k}"),
                cin,
                cout,
                k: 3,
                stride,
                pad: 1,
                quant: quant.clone(),
            },
            bn: BatchNorm { name: format!("{block}.bn{k}"), c: cout },
            stride,
        }
    }

    fn params(&self) -> Vec<ParamSpec> {
        [self.bn_in.params(), self.conv.params(), self.bn.params()].concat()
    }

    /// The output batch norm's backward writes the shortcut's gradient into the unit input's
    /// gradient; bn_in's backward (which runs after it) adds the branch's.
    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        let h = self.bn_in.build_fused(b, x, &Fused::PLAIN, None, true, None)?;
        let a = ternary(b, &format!("{}.act", self.name), &h)?;
        let (h, stats) = self.conv.build_with(b, &a, false, true, None)?;
        shortcut_unit(b, &self.bn, &h, stats.as_ref(), x, self.stride, false)
    }
}

fn ternary(b: &mut Builder, name: &str, x: &Var) -> Result<Var> {
    let y = b.act(&format!("{name}.out"), x.value.shape())?;
    b.forward.push(ops::activation::ternary_forward(b.gpu, name, &x.value, &y.value)?);
    if let (Some(dy), Some(dx)) = (&y.grad, &x.grad) {
        let bw = ops::activation::ternary_backward(b.gpu, name, &x.value, dy, dx)?;
        b.push_backward(Program { dispatches: vec![bw] });
    }
    Ok(y)
}
