//! The fused and llvmpipe-tuned kernels (conv2d_lanes.wgsl, batchnorm.wgsl's fused units)
//! against the f64 reference, on shapes that do not divide the workgroup, register-block or
//! segment sizes, and their backward kernels against finite differences of the reference
//! forward.

mod common;
#[path = "reference.rs"]
mod reference;

use common::*;
use reference::*;
use tern::ops;
use tern::ops::batchnorm::{BatchNormTensors, Fused, Pool, Residual};
use tern::ops::conv2d::Conv2dGeom;

const TOL: f64 = 1e-4;

fn geom(c: &Conv) -> Conv2dGeom {
    Conv2dGeom {
        n: c.n,
        cin: c.cin,
        h: c.h,
        w: c.w,
        cout: c.cout,
        kh: c.k,
        kw: c.k,
        stride: c.stride,
        pad: c.pad,
    }
}

/// 3×3 shapes for conv2d_lanes.wgsl (stride 1 and 2, channel counts around 8 and 16, widths
/// that do not fill a segment of 8 columns), and one 5×5 for the portable kernels.
const SHAPES: &[Conv] = &[
    Conv { n: 3, cin: 5, h: 9, w: 13, cout: 7, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 11, h: 8, w: 8, cout: 19, k: 3, stride: 1, pad: 1 },
    Conv { n: 2, cin: 9, h: 7, w: 10, cout: 33, k: 3, stride: 2, pad: 1 },
    Conv { n: 3, cin: 17, h: 12, w: 5, cout: 6, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 1, h: 28, w: 28, cout: 8, k: 3, stride: 1, pad: 1 },
    Conv { n: 1, cin: 3, h: 17, w: 3, cout: 16, k: 3, stride: 2, pad: 1 },
    Conv { n: 2, cin: 3, h: 9, w: 7, cout: 5, k: 5, stride: 1, pad: 2 },
];

#[test]
fn conv2d_lanes_forward_and_grads_match_reference() {
    let gpu = gpu();
    for (s, c) in SHAPES.iter().enumerate() {
        let g = geom(c);
        let seed = 100 * s as u64;
        let (x, w, dy) = (
            values(g.input_shape().iter().product(), seed),
            values(c.cout * c.cin * c.k * c.k, seed + 1),
            values(c.n * c.cout * c.oh() * c.ow(), seed + 2),
        );
        let prior = values(x.len(), seed + 3);
        let (xt, wt, dyt) = (
            upload("x", &g.input_shape(), &x),
            upload("w", &g.weight_shape(), &w),
            upload("dy", &g.output_shape(), &dy),
        );
        let (yt, dxt, dwt) =
            (zeros("y", &g.output_shape()), zeros("dx", &g.input_shape()), zeros("dw", &g.weight_shape()));
        let acc = upload("dx_acc", &g.input_shape(), &prior);
        let mut p = ops::conv2d::grad_weight(gpu, "conv", &g, &xt, &dyt, &dwt).unwrap();
        p.push(ops::conv2d::forward(gpu, "conv", &g, &xt, &wt, &yt).unwrap());
        p.push(ops::conv2d::grad_input(gpu, "conv", &g, &dyt, &wt, &dxt).unwrap());
        p.push(ops::conv2d::grad_input_into(gpu, "conv", &g, &dyt, &wt, &acc, true).unwrap());
        run_programs(&[&p]);
        let path = if ops::conv2d::lanes(gpu, &g) { "lanes" } else { "portable" };
        let what = |name: &str| format!("conv2d {name} ({path}) {c:?}");
        assert_close(&what("forward"), &download(&yt), &conv2d(c, &x, &w), TOL);
        let (dx, dw) = conv2d_backward(c, &x, &w, &dy);
        assert_close(&what("grad_input"), &download(&dxt), &dx, TOL);
        assert_close(&what("grad_weight"), &download(&dwt), &dw, TOL);
        let summed: Vec<f64> = dx.iter().zip(&prior).map(|(a, b)| a + b).collect();
        assert_close(&what("grad_input accumulate"), &download(&acc), &summed, TOL);
    }
}

/// One fused batch-norm case: input shape, ReLU, pooling, residual (0 none, 1 identity,
/// 2 option A from a block input of `res_c` channels).
struct Case {
    shape: [usize; 4],
    relu: bool,
    pool: Pool,
    residual: u8,
    res_c: usize,
}

const CASES: &[Case] = &[
    Case { shape: [3, 5, 6, 7], relu: false, pool: Pool::None, residual: 0, res_c: 0 },
    Case { shape: [2, 3, 5, 9], relu: true, pool: Pool::None, residual: 0, res_c: 0 },
    Case { shape: [3, 4, 8, 6], relu: true, pool: Pool::Max2, residual: 0, res_c: 0 },
    Case { shape: [2, 3, 7, 9], relu: true, pool: Pool::Max2, residual: 0, res_c: 0 },
    Case { shape: [2, 2, 5, 4], relu: false, pool: Pool::Max2, residual: 0, res_c: 0 },
    Case { shape: [4, 6, 7, 7], relu: true, pool: Pool::Avg, residual: 0, res_c: 0 },
    Case { shape: [3, 4, 6, 5], relu: true, pool: Pool::None, residual: 1, res_c: 4 },
    Case { shape: [2, 5, 3, 7], relu: false, pool: Pool::None, residual: 1, res_c: 5 },
    Case { shape: [2, 8, 4, 3], relu: true, pool: Pool::None, residual: 2, res_c: 4 },
    Case { shape: [3, 7, 5, 4], relu: true, pool: Pool::None, residual: 2, res_c: 3 },
];

impl Case {
    fn res_shape(&self) -> [usize; 4] {
        let [n, c, h, w] = self.shape;
        match self.residual {
            1 => [n, c, h, w],
            // option A: the block input is twice the size (odd when w is, to test the edge)
            _ => [n, self.res_c, 2 * h - (h % 2), 2 * w - (w % 2)],
        }
    }

    /// Reference forward: (output, z + shortcut before the ReLU) for x, residual input res.
    fn forward(&self, x: &[f64], res: &[f64], gamma: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let [n, c, h, w] = self.shape;
        let (z, _, _) = batchnorm(x, n, c, h * w, gamma, beta, ops::batchnorm::EPS as f64);
        self.after(z, res)
    }

    /// What follows the batch norm's output z.
    fn after(&self, mut z: Vec<f64>, res: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let [n, c, h, w] = self.shape;
        let [_, rc, rh, rw] = self.res_shape();
        match self.residual {
            1 => z.iter_mut().zip(res).for_each(|(a, b)| *a += b),
            2 => z.iter_mut().zip(shortcut(res, n, rc, rh, rw, c, 2)).for_each(|(a, b)| *a += b),
            _ => {}
        }
        let a = if self.relu { relu(&z) } else { z.clone() };
        let y = match self.pool {
            Pool::None => a,
            Pool::Max2 => maxpool(&a, n, c, h, w, 2, 2).0,
            Pool::Avg => avgpool(&a, n * c, h * w),
        };
        (y, z)
    }

    /// Reference backward: (dx, dgamma, dbeta, dres).
    fn backward(&self, x: &[f64], res: &[f64], gamma: &[f64], beta: &[f64], dy: &[f64]) -> [Vec<f64>; 4] {
        let [n, c, h, w] = self.shape;
        let (_, z) = self.forward(x, res, gamma, beta);
        let a = if self.relu { relu(&z) } else { z.clone() };
        let da = match self.pool {
            Pool::None => dy.to_vec(),
            Pool::Max2 => maxpool_backward(&a, dy, n, c, h, w, 2, 2),
            Pool::Avg => avgpool_backward(dy, h * w),
        };
        let g = if self.relu { relu_backward(&z, &da) } else { da };
        let (dx, dgamma, dbeta) = batchnorm_backward(x, &g, n, c, h * w, gamma, ops::batchnorm::EPS as f64);
        let [_, rc, rh, rw] = self.res_shape();
        let dres = match self.residual {
            1 => g,
            2 => shortcut_backward(&g, n, rc, rh, rw, c, 2),
            _ => Vec::new(),
        };
        [dx, dgamma, dbeta, dres]
    }
}

/// GPU tensors of a case: the unit's inputs and parameters, uploaded.
struct Unit {
    x: tern::gpu::Tensor,
    res: tern::gpu::Tensor,
    gamma: tern::gpu::Tensor,
    beta: tern::gpu::Tensor,
    rm: tern::gpu::Tensor,
    rv: tern::gpu::Tensor,
    mean: tern::gpu::Tensor,
    invstd: tern::gpu::Tensor,
}

impl Unit {
    fn new(case: &Case, x: &[f64], res: &[f64], gamma: &[f64], beta: &[f64]) -> Unit {
        let c = case.shape[1];
        Unit {
            x: upload("x", &case.shape, x),
            res: upload("res", &case.res_shape(), res),
            gamma: upload("gamma", &[c], gamma),
            beta: upload("beta", &[c], beta),
            rm: zeros("running_mean", &[c]),
            rv: upload("running_var", &[c], &vec![1.0; c]),
            mean: zeros("mean", &[c]),
            invstd: zeros("invstd", &[c]),
        }
    }

    fn tensors(&self) -> BatchNormTensors<'_> {
        BatchNormTensors {
            gamma: &self.gamma,
            beta: &self.beta,
            running_mean: &self.rm,
            running_var: &self.rv,
            mean: &self.mean,
            invstd: &self.invstd,
        }
    }

    fn fused<'a>(&'a self, case: &Case) -> Fused<'a> {
        let residual = match case.residual {
            1 => Residual::Identity(&self.res),
            2 => Residual::OptionA(&self.res),
            _ => Residual::None,
        };
        Fused { relu: case.relu, pool: case.pool, residual }
    }
}

fn inputs(case: &Case, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, w] = case.shape;
    let x: Vec<f64> = values(n * c * h * w, seed).iter().map(|v| 1.7 * v + 0.4).collect();
    let res = values(case.res_shape().iter().product(), seed + 1);
    let gamma: Vec<f64> = values(c, seed + 2).iter().map(|v| v + 1.2).collect();
    let beta = values(c, seed + 3);
    (x, res, gamma, beta)
}

#[test]
fn fused_batchnorm_units_match_reference() {
    let gpu = gpu();
    for (s, case) in CASES.iter().enumerate() {
        let what = |name: &str| {
            format!(
                "{name}: {:?} relu {} pool {:?} residual {}",
                case.shape, case.relu, case.pool, case.residual
            )
        };
        let (x, res, gamma, beta) = inputs(case, 10 * s as u64);
        let unit = Unit::new(case, &x, &res, &gamma, &beta);
        let (t, f) = (unit.tensors(), unit.fused(case));
        let out = ops::batchnorm::output_shape(&case.shape, case.pool);
        let y = zeros("y", &out);
        let dy = values(out.iter().product(), 10 * s as u64 + 5);
        let dyt = upload("dy", &out, &dy);
        let c = case.shape[1];
        let (dg, db) = (zeros("dgamma", &[c]), zeros("dbeta", &[c]));
        // dx accumulates onto a prior value; dres is overwritten over stale contents.
        let prior = values(x.len(), 10 * s as u64 + 6);
        let dx = upload("dx", &case.shape, &prior);
        let dres = upload("dres", &case.res_shape(), &values(res.len(), 7));
        let mut p = tern::gpu::Program::default();
        p.extend_from(ops::batchnorm::fused_forward_train(gpu, "bn", &unit.x, &y, &t, &f).unwrap());
        let dres_t = (case.residual != 0).then_some(&dres);
        let bw =
            ops::batchnorm::fused_backward(gpu, "bn", &unit.x, &y, &dyt, &dx, &t, &dg, &db, &f, dres_t, true)
                .unwrap();
        p.extend_from(bw);
        run_programs(&[&p]);
        let (want_y, _) = case.forward(&x, &res, &gamma, &beta);
        assert_close(&what("y"), &download(&y), &want_y, TOL);
        let [want_dx, want_dg, want_db, want_dres] = case.backward(&x, &res, &gamma, &beta, &dy);
        let want_dx: Vec<f64> = want_dx.iter().zip(&prior).map(|(a, b)| a + b).collect();
        assert_close(&what("dx (accumulated)"), &download(&dx), &want_dx, TOL);
        assert_close(&what("dgamma"), &download(&dg), &want_dg, TOL);
        assert_close(&what("dbeta"), &download(&db), &want_db, TOL);
        if case.residual != 0 {
            assert_close(&what("dres"), &download(&dres), &want_dres, TOL);
        }
        // Evaluation: the running statistics (one momentum step from (0, 1)) through the same
        // fused forward.
        let [n, _, h, w] = case.shape;
        let (_, bmean, bvar) = batchnorm(&x, n, c, h * w, &gamma, &beta, ops::batchnorm::EPS as f64);
        let m = (n * h * w) as f64;
        let rm: Vec<f64> = bmean.iter().map(|v| 0.1 * v).collect();
        let rv: Vec<f64> = bvar.iter().map(|v| 0.9 + 0.1 * v * m / (m - 1.0)).collect();
        assert_close(&what("running mean"), &download(&unit.rm), &rm, TOL);
        assert_close(&what("running var"), &download(&unit.rv), &rv, TOL);
        let ye = zeros("y_eval", &out);
        run(ops::batchnorm::fused_forward_eval(gpu, "bn", &unit.x, &ye, &t, &f).unwrap());
        let z = batchnorm_eval(&x, c, h * w, &gamma, &beta, &rm, &rv, ops::batchnorm::EPS as f64);
        assert_close(&what("y eval"), &download(&ye), &case.after(z, &res).0, TOL);
    }
}

/// Central differences of `f` at up to 40 coordinates of `x`, against `analytic`.
#[track_caller]
fn check(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64) {
    let eps = 1e-5;
    let scale = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    let stride = (x.len() / 40).max(1);
    for i in (0..x.len()).step_by(stride) {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (f(&plus) - f(&minus)) / (2.0 * eps);
        let err = (fd - analytic[i]).abs() / (fd.abs() + 1e-2 * scale);
        assert!(err < 2e-3, "{what}[{i}]: finite difference {fd}, GPU {}", analytic[i]);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn fused_batchnorm_gradients_match_finite_differences() {
    let gpu = gpu();
    for (s, case) in CASES.iter().enumerate().filter(|(_, c)| c.relu || c.residual != 0) {
        let what =
            |name: &str| format!("{name}: {:?} pool {:?} residual {}", case.shape, case.pool, case.residual);
        let (x, res, gamma, beta) = inputs(case, 500 + 10 * s as u64);
        let unit = Unit::new(case, &x, &res, &gamma, &beta);
        let (t, f) = (unit.tensors(), unit.fused(case));
        let out = ops::batchnorm::output_shape(&case.shape, case.pool);
        let r = values(out.iter().product(), 77 + s as u64);
        let (y, rt) = (zeros("y", &out), upload("r", &out, &r));
        let c = case.shape[1];
        let (dx, dg, db) = (zeros("dx", &case.shape), zeros("dgamma", &[c]), zeros("dbeta", &[c]));
        let dres = zeros("dres", &case.res_shape());
        let mut p = tern::gpu::Program::default();
        p.extend_from(ops::batchnorm::fused_forward_train(gpu, "bn", &unit.x, &y, &t, &f).unwrap());
        let dres_t = (case.residual != 0).then_some(&dres);
        p.extend_from(
            ops::batchnorm::fused_backward(gpu, "bn", &unit.x, &y, &rt, &dx, &t, &dg, &db, &f, dres_t, false)
                .unwrap(),
        );
        run_programs(&[&p]);
        let loss = |x: &[f64], res: &[f64], g: &[f64], b: &[f64]| dot(&case.forward(x, res, g, b).0, &r);
        check(&what("dx"), &x, &download(&dx), |v| loss(v, &res, &gamma, &beta));
        check(&what("dgamma"), &gamma, &download(&dg), |v| loss(&x, &res, v, &beta));
        check(&what("dbeta"), &beta, &download(&db), |v| loss(&x, &res, &gamma, v));
        if case.residual != 0 {
            check(&what("dres"), &res, &download(&dres), |v| loss(&x, v, &gamma, &beta));
        }
    }
}
