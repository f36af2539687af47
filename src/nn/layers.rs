//! Layers: each declares its parameters and records its forward and backward kernels.
//! Parameter names follow PyTorch's CIFAR ResNets (conv1.weight, layer1.0.bn2.running_var, ...).

use super::graph::Builder;
use crate::gpu::Program;
use crate::gpu::Var;
use crate::ops::{self, batchnorm::BatchNormTensors, conv2d::Conv2dGeom};
use crate::params::{Init, ParamSpec};
use crate::quant::Quantizer;
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
        let s = x.value.shape();
        let g = Conv2dGeom::new(s, &[self.cout, self.cin, self.k, self.k], self.stride, self.pad);
        let w = b.param(&format!("{}.weight", self.name))?;
        let q =
            self.quant.build(b.gpu, &self.name, &w, &extra_refs(b, self.quant.as_ref(), &self.name, &w)?)?;
        b.forward.extend(q.forward);
        b.after_update.extend(q.after_update);
        let y = b.act(&format!("{}.out", self.name), &g.output_shape())?;
        b.forward.push(ops::conv2d::forward(b.gpu, &self.name, &g, &x.value, &q.wq, &y.value)?);
        if let (Some(dy), Some(gq)) = (&y.grad, &q.gq) {
            let mut bw = ops::conv2d::grad_weight(b.gpu, &self.name, &g, &x.value, dy, gq)?;
            bw.extend(q.backward);
            if let Some(dx) = &x.grad {
                bw.push(ops::conv2d::grad_input(b.gpu, &self.name, &g, dy, &q.wq, dx)?);
            }
            b.push_backward(bw);
        }
        Ok(y)
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
        let n = &self.name;
        let (gamma, beta) = (b.param(&format!("{n}.weight"))?, b.param(&format!("{n}.bias"))?);
        let (rm, rv) = (b.param(&format!("{n}.running_mean"))?, b.param(&format!("{n}.running_var"))?);
        let mean = b.tensor(&format!("{n}.mean"), &[self.c])?;
        let invstd = b.tensor(&format!("{n}.invstd"), &[self.c])?;
        let t = BatchNormTensors {
            gamma: &gamma.value,
            beta: &beta.value,
            running_mean: &rm.value,
            running_var: &rv.value,
            mean: &mean,
            invstd: &invstd,
        };
        let y = b.act(&format!("{n}.out"), x.value.shape())?;
        if !b.training() {
            b.forward.extend_from(ops::batchnorm::forward_eval(b.gpu, n, &x.value, &y.value, &t)?);
            return Ok(y);
        }
        b.forward.extend_from(ops::batchnorm::forward_train(b.gpu, n, &x.value, &y.value, &t)?);
        if let (Some(dy), Some(dx), Some(dg), Some(db)) = (&y.grad, &x.grad, &gamma.grad, &beta.grad) {
            let bw = ops::batchnorm::backward(b.gpu, n, &x.value, dy, dx, &t, dg, db)?;
            b.push_backward(Program { dispatches: bw.into() });
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

    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        let name = &self.name;
        let res = Residual::begin(b, name, x, self.stride)?;
        let h = self.conv1.build(b, &res.branch_in)?;
        let h = self.bn1.build(b, &h)?;
        let h = relu(b, &format!("{name}.relu1"), &h)?;
        let h = self.conv2.build(b, &h)?;
        let h = self.bn2.build(b, &h)?;
        let sum = res.end(b, &h)?;
        relu(b, &format!("{name}.relu2"), &sum)
    }
}

/// A residual connection around a branch. `begin` gives the branch the block input with its own
/// gradient buffer and reserves the join of the two gradient paths (it must run after the
/// branch's backward); `end` adds the identity or option-A shortcut.
struct Residual {
    name: String,
    x: Var,
    branch_in: Var,
    join: Option<usize>,
    stride: usize,
}

impl Residual {
    fn begin(b: &mut Builder, name: &str, x: &Var, stride: usize) -> Result<Residual> {
        let join = x.grad.as_ref().map(|_| b.push_backward(Program::default()));
        let grad =
            x.grad.as_ref().map(|g| b.tensor(&format!("{name}.branch.grad"), g.shape())).transpose()?;
        let branch_in = Var { value: x.value.clone(), grad };
        Ok(Residual { name: name.into(), x: x.clone(), branch_in, join, stride })
    }

    /// sum = branch + shortcut(x); sum shares the branch output's gradient buffer, since ∂L/∂sum
    /// flows unchanged to both.
    fn end(self, b: &mut Builder, branch: &Var) -> Result<Var> {
        let (name, x) = (&self.name, &self.x);
        let identity = self.stride == 1 && x.value.shape() == branch.value.shape();
        let sc_name = format!("{name}.shortcut");
        let shortcut = if identity {
            x.value.clone()
        } else {
            let sc = b.tensor(&sc_name, branch.value.shape())?;
            b.forward.push(ops::shortcut::forward(b.gpu, &sc_name, &x.value, &sc, self.stride)?);
            sc
        };
        let sum =
            Var { value: b.tensor(&format!("{name}.sum"), branch.value.shape())?, grad: branch.grad.clone() };
        b.forward.push(ops::activation::add(b.gpu, name, &branch.value, &shortcut, &sum.value)?);
        if let (Some(slot), Some(dx), Some(dbranch), Some(dsum)) =
            (self.join, &x.grad, &self.branch_in.grad, &sum.grad)
        {
            let join = format!("{name}.join");
            let mut p = Program::default();
            if identity {
                p.push(ops::activation::add(b.gpu, &join, dbranch, dsum, dx)?);
            } else {
                let dsc = b.tensor(&format!("{sc_name}.grad"), dx.shape())?;
                p.push(ops::shortcut::backward(b.gpu, &sc_name, dsum, &dsc, self.stride)?);
                p.push(ops::activation::add(b.gpu, &join, dbranch, &dsc, dx)?);
            }
            b.set_backward(slot, p);
        }
        Ok(sum)
    }
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

    fn build(&self, b: &mut Builder, x: &Var) -> Result<Var> {
        let res = Residual::begin(b, &self.name, x, self.stride)?;
        let h = self.bn_in.build(b, &res.branch_in)?;
        let a = ternary(b, &format!("{}.act", self.name), &h)?;
        let h = self.conv.build(b, &a)?;
        let h = self.bn.build(b, &h)?;
        res.end(b, &h)
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
