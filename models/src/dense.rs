//! A fully connected layer with its bias and activation fused into one graph node, for the VAE's
//! MLPs on the CPU.
//!
//! ```text
//! y = act(x W + b)          x: [B, in],  W: [in, out],  b: [out],  act ∈ {identity, relu}
//! backward, with g = ∂L/∂y ⊙ act'(y):
//!   ∂L/∂W = xᵀ g,   ∂L/∂b = Σ_rows g,   ∂L/∂x = g Wᵀ  (only when x needs a gradient)
//! ```
//!
//! Written with candle's ops, a layer is five graph nodes (transpose, matmul, broadcast add,
//! activation) and its backward also computes ∂L/∂x for the data, which a VAE's first layer throws
//! away (a quarter of a training step's matrix products). As one custom op it is one node, its
//! backward skips ∂L/∂x when x is data, and W is stored [in, out] so no product needs a transpose.
//! In the VAE trainer's backward pass (`captured.rs`), ∂L/∂W and ∂L/∂b bypass candle's gradient store.
//! Off the CPU (or for dtypes other than f32/f64) the layer is the plain composition of candle ops.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Module, Shape, Tensor, Var,
};

use crate::captured;

/// The activation of a [`Dense`] layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// y = x W + b.
    Identity,
    /// y = max(x W + b, 0).
    Relu,
}

/// y = act(x W + b), with W `[in, out]` and b `[out]` as candle `Var`s.
#[derive(Clone, Debug)]
pub struct Dense {
    weight: Var,
    bias: Var,
    activation: Activation,
}

impl Dense {
    /// The layer with weight `weight` `[in, out]`, bias `bias` `[out]` and `activation`.
    pub fn new(weight: Var, bias: Var, activation: Activation) -> candle_core::Result<Self> {
        let (_, out) = weight.dims2()?;
        if bias.dims() != [out] {
            bail!("Dense: the bias has shape {:?}, but the weight [in, out] has out = {out}", bias.dims());
        }
        Ok(Dense { weight, bias, activation })
    }

    /// W, `[in, out]`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// b, `[out]`.
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The same layer written with candle's own ops (the reference for the fused op, and the path
    /// off the CPU).
    pub fn forward_composite(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(self.weight.as_tensor())?.broadcast_add(self.bias.as_tensor())?;
        match self.activation {
            Activation::Identity => Ok(y),
            Activation::Relu => y.relu(),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let fused = matches!(x.device(), Device::Cpu)
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.dtype() == self.weight.dtype()
            && x.rank() == 2;
        if fused {
            x.apply_op3(self.weight.as_tensor(), self.bias.as_tensor(), DenseOp(self.activation))
        } else {
            self.forward_composite(x)
        }
    }
}

/// act(x W + b) as one op (arguments x, W, b).
struct DenseOp(Activation);

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        if k != k2 {
            bail!("dense: x is [{m}, {k}] but W is [{k2}, {n}]");
        }
        let mut y = s1.matmul(s2, (1, m, n, k), l1, l2)?;
        let Some((b0, b1)) = l3.contiguous_offsets() else { bail!("dense: the bias must be contiguous") };
        let relu = self.0 == Activation::Relu;
        match (&mut y, s3) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => add_bias_act(y, &b[b0..b1], relu),
            (CpuStorage::F64(y), CpuStorage::F64(b)) => add_bias_act(y, &b[b0..b1], relu),
            _ => bail!("dense: x, W and b must share one dtype, f32 or f64"),
        }
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = match self.0 {
            Activation::Identity => grad.contiguous()?,
            Activation::Relu => grad.apply_op2_no_bwd(res, &ReluGrad)?,
        };
        // ∂L/∂W and ∂L/∂x are independent products: both at once on rayon's pool (a thread each
        // where gemm alone would split one product over both)
        let (dw, dx) =
            rayon::join(|| x.t()?.matmul(&g), || if x.track_op() { g.matmul(&w.t()?).map(Some) } else { Ok(None) });
        let (dw, dx) = (dw?, dx?);
        let db = g.apply_op1_no_bwd(&ColumnSum)?;
        // kept out of candle's GradStore inside `captured::backward` (the zero-fill and add it saves)
        Ok((dx, captured::offer(w, dw)?, captured::offer(b, db)?))
    }
}

/// y_ij ← act(y_ij + b_j) over the rows of y.
fn add_bias_act<T: Copy + PartialOrd + std::ops::Add<Output = T> + Default>(y: &mut [T], b: &[T], relu: bool) {
    let zero = T::default();
    for row in y.chunks_exact_mut(b.len()) {
        if relu {
            for (v, &bj) in row.iter_mut().zip(b) {
                let s = *v + bj;
                *v = if s > zero { s } else { zero };
            }
        } else {
            for (v, &bj) in row.iter_mut().zip(b) {
                *v = *v + bj;
            }
        }
    }
}

/// Σ over the rows of a contiguous `[B, n]` tensor, `[n]`: row after row added into one
/// accumulator (candle's sum over axis 0 walks the columns with a stride).
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column_sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, n) = l.shape().dims2()?;
        let Some((a, b)) = l.contiguous_offsets() else { bail!("column_sum: expects a contiguous tensor") };
        fn sum<T: Copy + Default + std::ops::AddAssign>(v: &[T], n: usize) -> Vec<T> {
            let mut acc = vec![T::default(); n];
            for row in v.chunks_exact(n) {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += x;
                }
            }
            acc
        }
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(sum(&v[a..b], n)),
            CpuStorage::F64(v) => CpuStorage::F64(sum(&v[a..b], n)),
            _ => bail!("column_sum: f32 or f64"),
        };
        Ok((out, Shape::from(n)))
    }
}

/// g ⊙ 1[y > 0] (arguments: the upstream gradient g, the layer's output y = relu(·)).
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu_grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::cpu_backend::binary_map;
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(y)) => match (l1.contiguous_offsets(), l2.contiguous_offsets()) {
                (Some((g0, g1)), Some((y0, y1))) => CpuStorage::F32(
                    g[g0..g1].iter().zip(&y[y0..y1]).map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }).collect(),
                ),
                _ => CpuStorage::F32(binary_map(l1, l2, g, y, |g, y| if y > 0.0 { g } else { 0.0 })),
            },
            (CpuStorage::F64(g), CpuStorage::F64(y)) => {
                CpuStorage::F64(binary_map(l1, l2, g, y, |g, y| if y > 0.0 { g } else { 0.0 }))
            }
            _ => bail!("relu_grad: f32 or f64 of one dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        // a fixed, irregular sequence in (−1, 1)
        (0..n).map(|i| ((i as f64 + 1.0) * 0.618_034 * (seed as f64 + 1.3)).fract() * 2.0 - 1.0).collect()
    }

    /// The fused layer's value and gradients (W, b, and x when x is a variable) equal the
    /// composite's, for both activations, in f64.
    #[test]
    fn fused_layer_matches_candle_ops() {
        let dev = Device::Cpu;
        for act in [Activation::Identity, Activation::Relu] {
            let x = Var::from_vec(values(5 * 4, 1), (5, 4), &dev).unwrap();
            let w = Var::from_vec(values(4 * 3, 2), (4, 3), &dev).unwrap();
            let b = Var::from_vec(values(3, 3), 3, &dev).unwrap();
            let layer = Dense::new(w.clone(), b.clone(), act).unwrap();
            let weights = Tensor::new(&[[0.3f64, -1.2, 0.7]], &dev).unwrap();
            let run = |fused: bool| {
                let y =
                    if fused { layer.forward(x.as_tensor()) } else { layer.forward_composite(x.as_tensor()) }.unwrap();
                let loss = y.broadcast_mul(&weights).unwrap().sqr().unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                let get = |v: &Var| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                (y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), get(&x), get(&w), get(&b))
            };
            let (fused, plain) = (run(true), run(false));
            for (a, b) in [(&fused.0, &plain.0), (&fused.1, &plain.1), (&fused.2, &plain.2), (&fused.3, &plain.3)] {
                for (u, v) in a.iter().zip(b.iter()) {
                    assert!((u - v).abs() < 1e-12, "{act:?}: fused {u} vs candle {v}");
                }
            }
        }
    }

    /// Data that needs no gradient gets none (the saved product), the weights still do.
    #[test]
    fn data_input_gets_no_gradient() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(values(6, 4), (2, 3), &dev).unwrap();
        let w = Var::from_vec(values(6, 5), (3, 2), &dev).unwrap();
        let b = Var::from_vec(values(2, 6), 2, &dev).unwrap();
        let layer = Dense::new(w.clone(), b, Activation::Relu).unwrap();
        let grads = layer.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(w.as_tensor()).is_some());
    }
}
