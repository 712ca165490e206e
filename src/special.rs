//! Special functions on tensors that candle 0.11 lacks, with gradients.
//!
//! ```text
//! lgamma(x)       = ln Γ(x)                                          (x > 0)       d/dx = ψ(x)
//! digamma(x)      = ψ(x)   = d/dx ln Γ(x)                                          d/dx = ψ₁(x)
//! trigamma(x)     = ψ₁(x)  = d/dx ψ(x) = Σ_{n≥0} 1/(x + n)²                        (no derivative)
//! log1p(x)        = ln(1 + x)                                        (x > −1)      d/dx = 1/(1 + x)
//! softplus(x)     = ln(1 + eˣ)  = max(x, 0) + ln(1 + e^(−|x|))       (every x)     d/dx = σ(x)
//! log_sigmoid(x)  = ln σ(x)     = −softplus(−x)                                    d/dx = σ(−x)
//! softplus⁻¹(y)   = ln(e^y − 1) = y + ln(1 − e^(−y))                 (host, y > 0)
//! σ(x)            = 1 / (1 + e^(−x))                                 (logistic sigmoid)
//! ```
//!
//! On the CPU each function is one fused [`CustomOp1`] whose values come from the host in `f64`
//! (rounded once to `f32` for `f32` tensors), so they are accurate to about an ulp: `log1p(1e-12)`
//! is `1e-12 − 5e-25`, `softplus(−800)` is `e^(−800)` (0 after underflow) and `softplus(800)` is 800.
//! ln Γ and ψ come from statrs; ψ₁ is computed here (recurrence ψ₁(x) = ψ₁(x + 1) + 1/x² up to
//! x ≥ 10, then the asymptotic series ψ₁(x) ~ 1/x + 1/(2x²) + Σ_k B₂ₖ / x^(2k+1) with Bernoulli
//! numbers B₂ₖ, and the reflection formula ψ₁(1 − x) + ψ₁(x) = π² / sin²(πx) for x < 0).
//!
//! The backward passes are themselves differentiable (lgamma → digamma → trigamma, softplus →
//! [`candle_nn::ops::sigmoid`]), except that trigamma has no derivative of its own.
//!
//! Dispatch, explicit in `apply`: on CPU tensors of dtype `f32` or `f64` each function is the
//! fused custom op above; on every other device (CUDA) and dtype (`f16`, `bf16`) it is a
//! composition of candle ops that every backend implements, differentiated by candle's autodiff.
//! Integer tensors are an error everywhere. The compositions:
//!
//! ```text
//! softplus(x)    = relu(x) + ln(1 + e^(−|x|)),    log_sigmoid(x) = −softplus(−x),    log1p(x) = ln(x + 1)
//! shift:           z = x + m with m = #{i < 10 : x + i < 10}, so z ≥ 10 for every x > 0
//! lgamma(x)      = ln Γ(z) − ln Π_{i<m} (x + i),     ln Γ(z) ~ (z − ½) ln z − z + ½ ln 2π + Σ_{k=1}^{8} B₂ₖ / (2k(2k−1) z^(2k−1))
//! digamma(x)     = ψ(z) − Σ_{i<m} 1/(x + i),         ψ(z)    ~ ln z − 1/(2z) − Σ_{k=1}^{8} B₂ₖ / (2k z^(2k))
//! trigamma(x)    = ψ₁(z) + Σ_{i<m} 1/(x + i)²,       ψ₁(z)   ~ 1/z + 1/(2z²) + Σ_{k=1}^{8} B₂ₖ / z^(2k+1)
//! ```
//!
//! The shift is ten masked steps (`where_cond`), branch-free, so it runs wherever candle has f64. The
//! three gamma-family compositions compute in `f64` whatever the input dtype (cast back at the end,
//! like the CPU ops) and are defined for x ≥ 0 (+∞ at 0 for lgamma and trigamma, −∞ for digamma);
//! for x < 0 they return NaN, where the CPU ops follow statrs. At z ≥ 10 the first omitted term of
//! each series is below 1e-17 relative, so the error is rounding in the recurrence: ≲ 1e-14 ×
//! max(1, |value|) in `f64` (the tests check 1e-13), the correctly rounded value in `f32` up to
//! an ulp. The compositions of softplus, log_sigmoid and log1p are exact to within an ulp of 1 in
//! *absolute* terms but lose *relative* accuracy for tiny results (`(x + 1).ln()` at x = 1e-12 in
//! `f32` is 0). Gradients off the CPU are candle's autodiff through the composition (for lgamma
//! that is the derivative of the truncated Stirling series: ψ to the same accuracy), and trigamma's
//! composition is differentiable there, unlike the CPU op.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

/// ½ log 2π, the normalising constant of a standard normal density per dimension.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// ln Γ(x), the log of the gamma function, elementwise (x > 0; +∞ at 0).
///
/// On the CPU defined through statrs for x < 0 as well, where it is not meaningful (NaN where
/// Γ(x) < 0); off the CPU NaN for x < 0. Gradient: ψ(x) ([`digamma`]). Any device (module doc).
pub fn lgamma(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::Lgamma)
}

/// ψ(x) = d/dx ln Γ(x), the digamma function, elementwise (−∞ at 0 and at negative integers).
///
/// Gradient: ψ₁(x) ([`trigamma`]). Off the CPU NaN for x < 0. Any device (module doc).
pub fn digamma(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::Digamma)
}

/// ψ₁(x) = d/dx ψ(x), the trigamma function, elementwise (+∞ at 0 and at negative integers).
///
/// On the CPU it has no gradient (a backward pass through it is an error); off the CPU it is NaN
/// for x < 0 and differentiable by autodiff. Any device (module doc).
pub fn trigamma(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::Trigamma)
}

/// ln(1 + x), elementwise, exact for small |x| on the CPU (x > −1; −∞ at −1).
///
/// Gradient: 1 / (1 + x). Off the CPU: `(x + 1).ln()`.
pub fn log1p(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::Log1p)
}

/// softplus(x) = ln(1 + eˣ), elementwise, computed as max(x, 0) + ln(1 + e^(−|x|)): finite and
/// accurate for every finite x.
///
/// Gradient: σ(x). Off the CPU: `relu(x) + ln(1 + exp(−|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::Softplus)
}

/// ln σ(x) = −softplus(−x), the log of the logistic sigmoid, elementwise.
///
/// Gradient: σ(−x). Off the CPU: `−softplus(−x)` as a composition of candle ops.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    apply(x, Func::LogSigmoid)
}

/// softplus⁻¹(y) = log(eʸ − 1) for y > 0, on the host (used to initialise softplus-linked scales).
pub fn softplus_inverse(y: f64) -> f64 {
    y + (-(-y).exp_m1()).ln()
}

/// ψ₁(x), the trigamma function, on the host in `f64` (see the module doc for the method).
///
/// Accurate to a few ulps for x > 0; for x < 0 through the reflection formula, whose accuracy is
/// that of sin(πx). +∞ at 0 and at the negative integers, 0 at +∞.
pub fn trigamma_f64(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::INFINITY;
        }
        let s = (PI * x).sin();
        return PI * PI / (s * s) - trigamma_f64(1.0 - x);
    }
    // ψ₁(x) = Σ_{n=0}^{m−1} 1/(x+n)² + ψ₁(x+m), with x + m ≥ 10
    let mut acc = 0.0;
    let mut z = x;
    while z < 10.0 {
        acc += 1.0 / (z * z);
        z += 1.0;
    }
    // ψ₁(z) ~ 1/z + 1/(2z²) + B₂/z³ + B₄/z⁵ + … + B₁₆/z¹⁷; the next term is < 1e-17 · ψ₁(z) at z ≥ 10
    const B: [f64; 8] =
        [1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0, 7.0 / 6.0, -3617.0 / 510.0];
    let r = 1.0 / z;
    let r2 = r * r;
    let tail = B.iter().rev().fold(0.0, |t, b| b + r2 * t);
    acc + r * (1.0 + r * (0.5 + r * tail))
}

/// softplus on the host, in the stable form max(x, 0) + ln(1 + e^(−|x|)).
fn softplus_f64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The elementwise functions of this module, one fused CPU op each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Lgamma,
    Digamma,
    Trigamma,
    Log1p,
    Softplus,
    LogSigmoid,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Lgamma => "lgamma",
            Func::Digamma => "digamma",
            Func::Trigamma => "trigamma",
            Func::Log1p => "log1p",
            Func::Softplus => "softplus",
            Func::LogSigmoid => "log_sigmoid",
        }
    }

    /// The value on the host, in f64.
    fn host(self) -> fn(f64) -> f64 {
        match self {
            Func::Lgamma => statrs::function::gamma::ln_gamma,
            Func::Digamma => statrs::function::gamma::digamma,
            Func::Trigamma => trigamma_f64,
            Func::Log1p => f64::ln_1p,
            Func::Softplus => softplus_f64,
            Func::LogSigmoid => |x| -softplus_f64(-x),
        }
    }

    /// The same function as a composition of candle ops, for devices without the custom op.
    fn composite(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Func::Log1p => (x + 1.0)?.log(),
            Func::Softplus => softplus_composite(x),
            Func::LogSigmoid => softplus_composite(&x.neg()?)?.neg(),
            Func::Lgamma | Func::Digamma | Func::Trigamma => gamma_family_composite(self, x),
        }
    }
}

/// The shift of the recurrences: x is moved up by one at most `SHIFTS` times, until it is ≥ `SHIFT_TO`.
const SHIFT_TO: f64 = 10.0;
/// Enough steps to bring every x ≥ 0 to at least `SHIFT_TO`.
const SHIFTS: usize = 10;

/// B₂ₖ / (2k(2k − 1)), k = 1..8: the coefficients of Stirling's series for ln Γ.
const STIRLING: [f64; 8] = [
    1.0 / 12.0,
    -1.0 / 360.0,
    1.0 / 1260.0,
    -1.0 / 1680.0,
    1.0 / 1188.0,
    -691.0 / 360_360.0,
    1.0 / 156.0,
    -3617.0 / 122_400.0,
];
/// B₂ₖ / (2k), k = 1..8: the coefficients of the asymptotic series of ψ.
const DIGAMMA: [f64; 8] =
    [1.0 / 12.0, -1.0 / 120.0, 1.0 / 252.0, -1.0 / 240.0, 1.0 / 132.0, -691.0 / 32_760.0, 1.0 / 12.0, -3617.0 / 8160.0];
/// B₂ₖ, k = 1..8: the coefficients of the asymptotic series of ψ₁.
const TRIGAMMA: [f64; 8] =
    [1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0, 7.0 / 6.0, -3617.0 / 510.0];

/// Σₖ c[k] r2^k by Horner's rule (r2 a tensor, the coefficients constants).
fn horner(c: &[f64], r2: &Tensor) -> Result<Tensor> {
    let mut acc = (r2.zeros_like()? + c[c.len() - 1])?;
    for &ck in c.iter().rev().skip(1) {
        acc = ((acc * r2)? + ck)?;
    }
    Ok(acc)
}

/// ln Γ, ψ or ψ₁ as candle ops (formulas in the module doc): the recurrence shifts x to z ≥ 10,
/// where the asymptotic series is accurate to f64 rounding. Computed in f64, returned in x's dtype.
fn gamma_family_composite(f: Func, x: &Tensor) -> Result<Tensor> {
    let x64 = x.to_dtype(DType::F64)?;
    let ones = x64.ones_like()?;
    let zeros = x64.zeros_like()?;
    // z = x + m, and the recurrence's correction: Π (x + i) for lgamma, Σ 1/(x + i)^p otherwise
    let mut z = x64.clone();
    let mut correction = if f == Func::Lgamma { ones.clone() } else { zeros.clone() };
    for _ in 0..SHIFTS {
        let below = z.lt(SHIFT_TO)?;
        correction = match f {
            Func::Lgamma => (correction * below.where_cond(&z, &ones)?)?,
            Func::Digamma => (correction + below.where_cond(&z.recip()?, &zeros)?)?,
            Func::Trigamma => (correction + below.where_cond(&z.sqr()?.recip()?, &zeros)?)?,
            other => bail!("{} is not in the gamma family", other.name()),
        };
        z = (z + below.to_dtype(DType::F64)?)?;
    }
    let r = z.recip()?;
    let r2 = r.sqr()?;
    let value = match f {
        Func::Lgamma => {
            // (z − ½)(ln z − 1) − ½ + ½ ln 2π (= (z − ½) ln z − z + ½ ln 2π, and +∞ at z = +∞)
            // + r Σ c_k r^(2k−2), minus ln Π (x + i)
            let stirling = ((z.affine(1.0, -0.5)? * (z.log()? - 1.0)?)? + (HALF_LN_2PI - 0.5))?;
            ((stirling + (&r * horner(&STIRLING, &r2)?)?)? - correction.log()?)?
        }
        Func::Digamma => {
            // ln z − r/2 − r² Σ c_k r^(2k−2), minus Σ 1/(x + i)
            let psi = ((z.log()? - (&r * 0.5)?)? - (&r2 * horner(&DIGAMMA, &r2)?)?)?;
            (psi - correction)?
        }
        _ => {
            // ψ₁: r (1 + r (½ + r Σ B₂ₖ r^(2k−2))), plus Σ 1/(x + i)²
            let tail = ((&r * horner(&TRIGAMMA, &r2)?)? + 0.5)?;
            let psi1 = (&r * ((&r * tail)? + 1.0)?)?;
            (psi1 + correction)?
        }
    };
    // outside the domain x ≥ 0 (and for NaN input): NaN
    let nan = (zeros + f64::NAN)?;
    let value = x64.ge(0.0)?.where_cond(&value, &nan)?;
    value.to_dtype(x.dtype())
}

fn softplus_composite(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    x.relu()? + tail
}

/// Runs `f` as the fused op on CPU f32/f64 tensors, as a composite elsewhere; integers are an error.
fn apply(x: &Tensor, f: Func) -> Result<Tensor> {
    let dtype = x.dtype();
    if !dtype.is_float() {
        bail!("{}: expected a floating-point tensor, got dtype {:?}", f.name(), dtype);
    }
    match (x.device(), dtype) {
        (Device::Cpu, DType::F32 | DType::F64) => x.apply_op1(Op(f)),
        _ => f.composite(x),
    }
}

/// The fused CPU op for one [`Func`].
struct Op(Func);

impl CustomOp1 for Op {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        use candle_core::cpu_backend::unary_map;
        let f = self.0.host();
        let out = match storage {
            CpuStorage::F64(v) => CpuStorage::F64(unary_map(v, layout, f)),
            CpuStorage::F32(v) => CpuStorage::F32(unary_map(v, layout, |x| f(x as f64) as f32)),
            other => bail!("{}: f32/f64 only, got dtype {:?}", self.0.name(), other.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = match self.0 {
            Func::Lgamma => digamma(arg)?,
            Func::Digamma => trigamma(arg)?,
            Func::Trigamma => return Err(candle_core::Error::BackwardNotSupported { op: "trigamma" }),
            Func::Log1p => return Ok(Some(grad.div(&(arg + 1.0)?)?)),
            Func::Softplus => candle_nn::ops::sigmoid(arg)?,
            Func::LogSigmoid => candle_nn::ops::sigmoid(&arg.neg()?)?,
        };
        Ok(Some(grad.mul(&d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};
    use statrs::function::gamma::{digamma as psi, ln_gamma};
    use std::f64::consts::PI;

    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

    type TensorFn = fn(&Tensor) -> Result<Tensor>;
    type HostFn = fn(f64) -> f64;

    fn eval(f: TensorFn, xs: &[f64], dtype: DType) -> Vec<f64> {
        let t = Tensor::new(xs, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        f(&t).unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    /// |got − want| ≤ tol·|want| (exact match, infinities included, also passes).
    fn close(got: f64, want: f64, tol: f64) -> bool {
        got == want || (got - want).abs() <= tol * want.abs()
    }

    fn check_values(name: &str, f: TensorFn, reference: fn(f64) -> f64, xs: &[f64]) {
        for (dtype, tol) in [(DType::F64, 4e-16), (DType::F32, 6e-8)] {
            // the f32 op sees x rounded to f32, so the reference does too
            let xin: Vec<f64> =
                if dtype == DType::F32 { xs.iter().map(|&x| x as f32 as f64).collect() } else { xs.to_vec() };
            let got = eval(f, &xin, dtype);
            for (x, g) in xin.iter().zip(got) {
                let want = if dtype == DType::F32 { reference(*x) as f32 as f64 } else { reference(*x) };
                assert!(close(g, want, tol), "{name}({x}) in {dtype:?} = {g}, want {want}");
            }
        }
    }

    #[test]
    fn values_match_the_host_functions_in_f32_and_f64() {
        let grid = [-800.0, -40.0, -1.0, -1e-12, 0.0, 1e-300, 1e-12, 0.3, 1.0, 2.5, 17.0, 40.0, 800.0];
        check_values("softplus", softplus, softplus_f64, &grid);
        check_values("log_sigmoid", log_sigmoid, |x| -softplus_f64(-x), &grid);
        let grid1p = [-0.999, -0.5, -1e-12, 0.0, 1e-300, 1e-12, 1e-8, 0.5, 3.0, 1e30];
        check_values("log1p", log1p, f64::ln_1p, &grid1p);
        let positive = [1e-300, 1e-30, 1e-8, 0.01, 0.5, 1.0, 1.5, 2.0, 3.7, 10.0, 171.5, 1e6, 1e15];
        check_values("lgamma", lgamma, ln_gamma, &positive);
        check_values("digamma", digamma, psi, &positive);
    }

    #[test]
    fn extremes_are_finite_and_exact() {
        for dtype in [DType::F32, DType::F64] {
            let sp = eval(softplus, &[-800.0, 800.0], dtype);
            assert_eq!(sp, vec![0.0, 800.0], "{dtype:?}");
            let ls = eval(log_sigmoid, &[-800.0, 800.0], dtype);
            assert_eq!(ls, vec![-800.0, 0.0], "{dtype:?}");
        }
        // log1p(1e-12) = 1e-12 − 5e-25: exact to the last bit in both dtypes
        let x32 = 1e-12f32 as f64;
        assert_eq!(eval(log1p, &[x32], DType::F32)[0], x32.ln_1p() as f32 as f64);
        assert_eq!(eval(log1p, &[1e-12], DType::F64)[0], 1e-12f64.ln_1p());
        assert!(eval(log1p, &[1e-12], DType::F32)[0] > 0.0);
        // ln Γ(x) = −ln x − γx + (π²/12)x² + O(x³) near 0
        for x in [1e-300f64, 1e-100, 1e-8] {
            let want = -x.ln() - EULER_GAMMA * x + PI * PI / 12.0 * x * x;
            assert!(close(eval(lgamma, &[x], DType::F64)[0], want, 1e-15), "lgamma({x})");
        }
        let x32 = 1e-30f32 as f64;
        assert!(close(eval(lgamma, &[x32], DType::F32)[0], -x32.ln(), 6e-8));
        assert_eq!(eval(lgamma, &[0.0], DType::F64)[0], f64::INFINITY);
        // Stirling with three correction terms for large x (relative error ≪ 1e-15 here)
        for x in [1e4f64, 1e8, 1e15, 1e100] {
            let want = (x - 0.5) * x.ln() - x + HALF_LN_2PI + 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3));
            assert!(close(eval(lgamma, &[x], DType::F64)[0], want, 1e-14), "lgamma({x})");
        }
    }

    #[test]
    fn trigamma_known_values_and_finite_differences_of_digamma() {
        assert!(close(trigamma_f64(1.0), PI * PI / 6.0, 1e-15));
        assert!(close(trigamma_f64(0.5), PI * PI / 2.0, 1e-15));
        assert!(close(trigamma_f64(2.0), PI * PI / 6.0 - 1.0, 1e-15));
        // ψ₁(−½) = π²/2 + 4 (reflection)
        assert!(close(trigamma_f64(-0.5), PI * PI / 2.0 + 4.0, 1e-14));
        assert_eq!(trigamma_f64(0.0), f64::INFINITY);
        assert_eq!(trigamma_f64(-3.0), f64::INFINITY);
        // the recurrence holds across the switch to the asymptotic series at 10
        for x in [8.7, 9.0, 9.5, 9.999, 10.0, 10.5, 30.0] {
            assert!(close(trigamma_f64(x) - trigamma_f64(x + 1.0), 1.0 / (x * x), 1e-13), "recurrence at {x}");
        }
        for x in [0.05, 0.3, 1.0, 2.5, 7.0, 9.99, 10.01, 55.0, 1e3] {
            let h = 1e-5 * x;
            let fd = (psi(x + h) - psi(x - h)) / (2.0 * h);
            assert!(close(trigamma_f64(x), fd, 1e-7), "ψ₁({x}) = {} vs finite difference {fd}", trigamma_f64(x));
        }
        let t = Tensor::new(&[1.0f32, 0.5], &Device::Cpu).unwrap();
        let got = trigamma(&t).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got, vec![(PI * PI / 6.0) as f32, (PI * PI / 2.0) as f32]);
    }

    /// d/dx Σ f(x) by autodiff against central differences of the op itself, in f64.
    fn check_grad(name: &str, f: TensorFn, xs: &[f64]) {
        let v = Var::new(xs, &Device::Cpu).unwrap();
        let grads = f(v.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        for (x, gi) in xs.iter().zip(g) {
            let h = 1e-6 * x.abs().max(1e-3);
            let fd = (eval(f, &[x + h], DType::F64)[0] - eval(f, &[x - h], DType::F64)[0]) / (2.0 * h);
            assert!((gi - fd).abs() <= 1e-6 * fd.abs().max(1e-8), "d{name}/dx at {x}: autodiff {gi}, fd {fd}");
        }
    }

    #[test]
    fn backward_equals_finite_differences() {
        let reals = [-30.0, -3.0, -0.4, 0.0, 0.7, 4.0, 30.0];
        check_grad("softplus", softplus, &reals);
        check_grad("log_sigmoid", log_sigmoid, &reals);
        check_grad("log1p", log1p, &[-0.9, -0.3, 1e-9, 0.2, 5.0, 1e3]);
        let positive = [0.02, 0.3, 1.0, 1.7, 6.0, 9.5, 10.5, 80.0];
        check_grad("lgamma", lgamma, &positive);
        check_grad("digamma", digamma, &positive);
        // f32 gradients agree with the f64 ones
        let t = Var::new(&[0.3f32, 2.0, 40.0], &Device::Cpu).unwrap();
        let g = lgamma(t.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(t.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (x, gi) in [0.3f32, 2.0, 40.0].iter().zip(g) {
            assert_eq!(gi, psi(*x as f64) as f32);
        }
    }

    #[test]
    fn second_derivative_of_lgamma_is_trigamma_and_trigamma_has_none() {
        let x = Var::new(&[0.7f64, 3.0], &Device::Cpu).unwrap();
        let g = digamma(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(g, vec![trigamma_f64(0.7), trigamma_f64(3.0)]);
        let err = trigamma(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap_err();
        assert!(err.to_string().contains("trigamma"), "{err}");
    }

    #[test]
    fn integer_and_half_dtypes() {
        let ints = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        for f in [lgamma, digamma, trigamma, log1p, softplus, log_sigmoid] as [TensorFn; 6] {
            let err = f(&ints).unwrap_err().to_string();
            assert!(err.contains("floating-point"), "{err}");
        }
        // f16/bf16 on the CPU take the composite path where there is one
        let h = Tensor::new(&[0.5f32, -2.0], &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        let sp = softplus(&h).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        assert!((sp[0] - softplus_f64(0.5)).abs() < 1e-2 && (sp[1] - softplus_f64(-2.0)).abs() < 1e-2);
        // and the gamma family has one too (computed in f64, rounded to bf16's 8 bits)
        let lg = lgamma(&h.abs().unwrap()).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        assert!((lg[0] - ln_gamma(0.5)).abs() < 4e-3 * ln_gamma(0.5), "{lg:?}");
        assert!((lg[1] - ln_gamma(2.0)).abs() < 1e-12, "{lg:?}");
    }

    /// `f` as dispatched on the CPU: the fused op for f32 and f64.
    fn dispatched(f: Func, xs: &[f64], dtype: DType) -> Vec<f64> {
        let t = Tensor::new(xs, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        apply(&t, f).unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    /// The composition of `f` (the path off the CPU), forced on the CPU.
    fn composite(f: Func, xs: &[f64], dtype: DType) -> Vec<f64> {
        let t = Tensor::new(xs, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        f.composite(&t).unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    /// x from 1e-300 to 1e100, with the zeros of ln Γ (1, 2) and of ψ (1.4616…) and both sides of
    /// the switch to the series at 10.
    const POSITIVE: [f64; 24] = [
        1e-300,
        1e-30,
        1e-8,
        0.01,
        0.3,
        0.5,
        0.999,
        1.0,
        1.001,
        1.461_632_144_968_362_2,
        1.5,
        2.0,
        2.5,
        3.7,
        9.5,
        9.999,
        10.0,
        10.5,
        17.0,
        171.5,
        1e6,
        1e15,
        1e50,
        1e100,
    ];

    /// |got − want| ≤ tol · max(1, |want|): relative for large values, absolute near the zeros of
    /// the function (where any formula that adds terms of size ~1 has an absolute error).
    fn near(got: f64, want: f64, tol: f64) -> bool {
        got == want || (got - want).abs() <= tol * want.abs().max(1.0)
    }

    #[test]
    fn gamma_composites_match_statrs_and_the_cpu_ops() {
        let cases: [(Func, HostFn); 3] =
            [(Func::Lgamma, ln_gamma), (Func::Digamma, psi), (Func::Trigamma, trigamma_f64)];
        for (f, reference) in cases {
            let mut worst: f64 = 0.0;
            // f64: rounding in the recurrence (~1e-15) plus statrs' own error
            let got = composite(f, &POSITIVE, DType::F64);
            let cpu = dispatched(f, &POSITIVE, DType::F64);
            for ((&x, g), c) in POSITIVE.iter().zip(got).zip(cpu) {
                let want = reference(x);
                assert_eq!(c, want, "the CPU op is statrs / trigamma_f64");
                assert!(near(g, want, 1e-13), "{f:?}({x}) composite {g}, want {want}");
                worst = worst.max((g - want).abs() / want.abs().max(1.0));
            }
            // f32: the f64 result rounded once, so within an ulp of the rounded reference
            let x32: Vec<f64> = POSITIVE.iter().map(|&x| x as f32 as f64).filter(|&x| x > 0.0).collect();
            let got = composite(f, &x32, DType::F32);
            let cpu = dispatched(f, &x32, DType::F32);
            for ((&x, g), c) in x32.iter().zip(got).zip(cpu) {
                let want = reference(x) as f32 as f64;
                assert!(near(g, want, 1.2e-7), "{f:?}({x}) in f32: composite {g}, want {want}");
                assert!(near(g, c, 1.2e-7), "{f:?}({x}) in f32: composite {g}, CPU op {c}");
            }
            eprintln!("{f:?}: worst f64 error of the composite / max(1, |value|) = {worst:.1e}");
        }
    }

    #[test]
    fn gamma_composites_at_the_edges_of_the_domain() {
        let xs = [0.0, f64::INFINITY, -0.5, -3.0, -1e-30, f64::NEG_INFINITY, f64::NAN];
        for dtype in [DType::F64, DType::F32] {
            let lg = composite(Func::Lgamma, &xs, dtype);
            let dg = composite(Func::Digamma, &xs, dtype);
            let tg = composite(Func::Trigamma, &xs, dtype);
            let inf = f64::INFINITY;
            assert_eq!(&lg[..2], &[inf, inf], "lgamma {dtype:?}");
            assert_eq!(&dg[..2], &[-inf, inf], "digamma {dtype:?}");
            assert_eq!(&tg[..2], &[inf, 0.0], "trigamma {dtype:?}");
            for v in [&lg, &dg, &tg] {
                assert!(v[2..].iter().all(|v| v.is_nan()), "x < 0 and NaN give NaN in {dtype:?}: {v:?}");
            }
        }
        // strided input
        let t = Tensor::new(&[[1.0f64, 2.0, 3.5], [4.0, 0.25, 60.0]], &Device::Cpu).unwrap().t().unwrap();
        let got = Func::Lgamma.composite(&t).unwrap().to_vec2::<f64>().unwrap();
        for (row, xs) in got.iter().zip(t.to_vec2::<f64>().unwrap()) {
            for (g, x) in row.iter().zip(xs) {
                assert!(near(*g, ln_gamma(x), 1e-13), "lgamma({x}) = {g}");
            }
        }
    }

    /// d/dx Σ f(x) through the composition, by candle's autodiff, in `dtype`.
    fn composite_grad(f: Func, xs: &[f64], dtype: DType) -> Vec<f64> {
        let v = Var::from_tensor(&Tensor::new(xs, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let grads = f.composite(v.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        grads.get(v.as_tensor()).unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn composite_gradients_match_the_derivatives_and_finite_differences() {
        // the derivative in closed form: ψ, ψ₁, and ψ₂ by central differences of ψ₁
        fn psi2(x: f64) -> f64 {
            let h = 1e-4 * x;
            (trigamma_f64(x + h) - trigamma_f64(x - h)) / (2.0 * h)
        }
        let positive = [0.02, 0.3, 1.0, 1.7, 6.0, 9.5, 9.999, 10.0, 10.5, 80.0, 1e6];
        let cases: [(Func, HostFn, f64); 3] =
            [(Func::Lgamma, psi, 1e-13), (Func::Digamma, trigamma_f64, 1e-13), (Func::Trigamma, psi2, 1e-7)];
        for (f, derivative, tol) in cases {
            let g = composite_grad(f, &positive, DType::F64);
            for (&x, gi) in positive.iter().zip(g) {
                let want = derivative(x);
                assert!(near(gi, want, tol), "d{f:?}/dx at {x}: autodiff {gi}, want {want}");
                // and central differences of the composition itself
                let h = 1e-6 * x;
                let fd = (composite(f, &[x + h], DType::F64)[0] - composite(f, &[x - h], DType::F64)[0]) / (2.0 * h);
                assert!((gi - fd).abs() <= 1e-6 * fd.abs().max(1e-8), "d{f:?}/dx at {x}: autodiff {gi}, fd {fd}");
            }
            // in f32 the chain runs in f64 and the gradient is rounded once
            let x32 = [0.3f32 as f64, 2.0, 40.0];
            for (&x, gi) in x32.iter().zip(composite_grad(f, &x32, DType::F32)) {
                let want = derivative(x) as f32 as f64;
                assert!(near(gi, want, 2.4e-7), "d{f:?}/dx at {x} in f32: {gi}, want {want}");
            }
        }
        // softplus, log_sigmoid, log1p: autodiff through the composition = the CPU op's gradient
        let reals = [-30.0, -3.0, -0.4, 0.0, 0.7, 4.0, 30.0];
        let above = [-0.9, -0.3, 1e-9, 0.2, 5.0, 1e3];
        for (f, xs) in [(Func::Softplus, &reals[..]), (Func::LogSigmoid, &reals[..]), (Func::Log1p, &above[..])] {
            let v = Var::new(xs, &Device::Cpu).unwrap();
            let fused = apply(v.as_tensor(), f).unwrap().sum_all().unwrap().backward().unwrap();
            let fused = fused.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
            for ((x, a), b) in xs.iter().zip(fused).zip(composite_grad(f, xs, DType::F64)) {
                assert!(near(b, a, 1e-15), "d{f:?}/dx at {x}: composite {b}, CPU op {a}");
            }
        }
    }

    #[test]
    fn composites_agree_with_the_fused_ops() {
        for (f, xs) in [
            (Func::Softplus, [-30.0, -2.0, 0.0, 0.5, 3.0, 25.0]),
            (Func::LogSigmoid, [-30.0, -2.0, 0.0, 0.5, 3.0, 25.0]),
            (Func::Log1p, [-0.9, -0.2, 0.0, 0.5, 3.0, 25.0]),
        ] {
            let t = Tensor::new(&xs, &Device::Cpu).unwrap();
            let fused = apply(&t, f).unwrap().to_vec1::<f64>().unwrap();
            let comp = f.composite(&t).unwrap().to_vec1::<f64>().unwrap();
            for ((x, a), b) in xs.iter().zip(fused).zip(comp) {
                // absolute agreement within an ulp of max(1, |value|) (see the module doc)
                assert!(a == b || (a - b).abs() <= 4.5e-16 * a.abs().max(1.0), "{f:?}({x}): {a} vs {b}");
            }
        }
    }

    #[test]
    fn softplus_inverse_inverts() {
        for y in [1e-6, 0.1, 1.0, 20.0] {
            let x = softplus_inverse(y);
            assert!((x.exp().ln_1p() - y).abs() < 1e-12 * y.max(1.0));
        }
    }

    #[test]
    fn strided_inputs() {
        let t = Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap().t().unwrap();
        let got = lgamma(&t).unwrap().to_vec2::<f64>().unwrap();
        let want: Vec<Vec<f64>> =
            t.to_vec2::<f64>().unwrap().iter().map(|r| r.iter().map(|&x| ln_gamma(x)).collect()).collect();
        assert_eq!(got, want);
    }
}
