//! A ternary layer's quantized weights as the bit masks and scales of the packed convolutions
//! (shaders/ternary_masks.wgsl), rewritten on the GPU every training step so that the forward
//! convolution and the input gradient run on masks (see `nn::layers::Conv`).

use super::conv2d::Conv2dGeom;
use super::expect_shape;
use super::packed_conv::PackedWeights;
use crate::gpu::{Cost, DType, Dispatch, Gpu, GpuError, Grid, Result, Tensor, shaders};

/// Which convolution the masks serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The layer's own: rows are output channels, [cout, kh, kw, cin] bit order.
    Forward,
    /// The input gradient's (stride 1, "same" padding): the weights transposed and the taps
    /// flipped, rows are input channels, [cin, kh, kw, cout] bit order.
    Transposed,
}

impl Layout {
    /// (rows, weights per row and tap) of weights [cout, cin, kh, kw] in this layout.
    fn rows_inner(self, weight: &[usize]) -> (usize, usize) {
        match self {
            Layout::Forward => (weight[0], weight[1]),
            Layout::Transposed => (weight[1], weight[0]),
        }
    }
}

/// Masks and per-row scales of one layout; weight i of a row is `+wp[row]` (pos), `−wn[row]` (neg)
/// or 0.
pub struct Masks {
    pub pos: Tensor,
    pub neg: Tensor,
    pub wp: Tensor,
    pub wn: Tensor,
    pub layout: Layout,
}

impl Masks {
    /// Buffers for the weights [cout, cin, kh, kw] of layer `label`.
    pub fn new(gpu: &Gpu, label: &str, weight: &[usize], layout: Layout) -> Result<Masks> {
        let (rows, _) = layout.rows_inner(weight);
        let words = weight.iter().product::<usize>().div_ceil(32);
        let suffix = match layout {
            Layout::Forward => "",
            Layout::Transposed => "_t",
        };
        let t = |n: &str, shape: &[usize], d| gpu.tensor_of(&format!("{label}.{n}{suffix}"), shape, d);
        Ok(Masks {
            pos: t("pos", &[words], DType::U32)?,
            neg: t("neg", &[words], DType::U32)?,
            wp: t("wp", &[rows], DType::F32)?,
            wn: t("wn", &[rows], DType::F32)?,
            layout,
        })
    }

    pub fn weights(&self) -> PackedWeights<'_> {
        PackedWeights::Ternary { pos: &self.pos, neg: &self.neg, wp: &self.wp, wn: &self.wn }
    }
}

/// The geometry of the input gradient as a convolution of the output gradient by the transposed
/// weights (defined for stride 1 and "same" padding only: `None` otherwise).
pub fn transposed(g: &Conv2dGeom) -> Option<Conv2dGeom> {
    let same = g.kh == g.kw && g.kh % 2 == 1 && 2 * g.pad + 1 == g.kh;
    (g.stride == 1 && same)
        .then(|| Conv2dGeom::new(&g.output_shape(), &[g.cin, g.cout, g.kh, g.kw], 1, g.pad))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    cout: u32,
    cin: u32,
    taps: u32,
    transposed: u32,
    rows: u32,
    inner: u32,
    words: u32,
    pad: u32,
}

/// The scales, then the masks, of `m` from wq [cout, cin, kh, kw]. Every row must hold at most
/// two distinct non-zero values (true of every quantizer's forward layout, and of the transposed
/// one when the scales are per layer).
pub fn write(gpu: &Gpu, label: &str, wq: &Tensor, m: &Masks) -> Result<[Dispatch; 2]> {
    let label = format!("{label}/ternary_masks");
    let s = wq.shape();
    if s.len() != 4 {
        let what = format!("weights {s:?} are not [cout, cin, kh, kw]");
        return Err(GpuError::Invalid { label, what });
    }
    let (cout, cin, taps) = (s[0], s[1], s[2] * s[3]);
    let (rows, inner) = m.layout.rows_inner(s);
    let words = wq.numel().div_ceil(32);
    expect_shape(&label, &m.pos, &[words])?;
    expect_shape(&label, &m.neg, &[words])?;
    expect_shape(&label, &m.wp, &[rows])?;
    expect_shape(&label, &m.wn, &[rows])?;
    let u = |v: usize| crate::ops::u32_of(&label, "size", v);
    let p = Params {
        cout: u(cout)?,
        cin: u(cin)?,
        taps: u(taps)?,
        transposed: u32::from(m.layout == Layout::Transposed),
        rows: u(rows)?,
        inner: u(inner)?,
        words: u(words)?,
        pad: 0,
    };
    let bytes = 4 * wq.numel() as u64;
    let k = gpu.kernel(&shaders::TERNARY_MASKS, "scales")?;
    let tensors = [("wq", wq), ("wp", &m.wp), ("wn", &m.wn)];
    let cost = Cost::new(0, bytes + 8 * rows as u64);
    let scales = Dispatch::new(gpu, &k, label.clone(), &p, &tensors, Grid::Threads(rows as u64), cost)?;
    let k = gpu.kernel(&shaders::TERNARY_MASKS, "masks")?;
    let tensors = [("wq", wq), ("wp", &m.wp), ("pos", &m.pos), ("neg", &m.neg)];
    let cost = Cost::new(0, bytes + 8 * words as u64);
    let masks = Dispatch::new(gpu, &k, label, &p, &tensors, Grid::Threads(words as u64), cost)?;
    Ok([scales, masks])
}
