//! `elbo::dist` against statrs: values in f32 and f64, gradients against central finite
//! differences, broadcasting, and errors for bad parameters.
//!
//! ```text
//! values:     |log_prob − statrs ln_pdf| ≤ tol · max(|statrs|, 1)       tol = 1e-10 (f64), 1e-4 (f32)
//! gradients:  |autodiff − (f(θ + h) − f(θ − h)) / 2h| ≤ 1e-6 · max(|fd|, 1e-2)     in f64
//! ```
//!
//! Why max(|·|, 1): a log density near 0 is a sum of O(1) terms (ln σ, ½ ln 2π, ln Γ(α), …)
//! that cancel, so its rounding error is absolute, about an ulp of those terms, not relative to
//! the sum. Measured when this file was written: with a purely relative test every case passes
//! except Beta(1, 1), where statrs returns exactly 0 and `elbo` returns 8.9e-16 (ln Γ(1) + ln Γ(1)
//! − ln Γ(2) with statrs's Lanczos ln Γ(1) = −4.4e-16); the largest relative errors elsewhere are
//! 4.4e-13 in f64 (Gamma(1, 1) at x = 0.001, where log p = −0.001) and 7.6e-6 in f32.
//! The floor 1e-2 on gradients is the same idea for the finite differences, whose own error is
//! about ε·|f| / h ≈ 1e-10 here.

use candle_core::{DType, Device, Result, Tensor, Var};
use elbo::dist::*;
use statrs::distribution::{self as sd, Continuous, Discrete};
use std::f64::consts::{LN_2, PI};

const DEV: Device = Device::Cpu;

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &DEV).unwrap().to_dtype(dtype).unwrap()
}

/// The value a dtype holds for `v` (f32 rounds).
fn round_to(v: f64, dtype: DType) -> f64 {
    if dtype == DType::F32 {
        v as f32 as f64
    } else {
        v
    }
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        1e-4
    } else {
        1e-10
    }
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    let ok = got == want || (got - want).abs() <= tol * want.abs().max(1.0);
    assert!(ok, "{what}: got {got}, want {want} (rel. err {:.2e})", (got - want).abs() / want.abs().max(1.0));
}

type Maker = dyn Fn(Vec<Param>) -> Result<Box<dyn Distribution>>;

/// For every parameter tuple of `grid`, in f32 and f64, with the parameters passed as scalars
/// and as `[1]` tensors: log_prob at `xs(params)` equals `oracle(params, x)`.
fn check_values(
    name: &str,
    grid: &[Vec<f64>],
    xs: &dyn Fn(&[f64]) -> Vec<f64>,
    make: &Maker,
    oracle: &dyn Fn(&[f64], f64) -> f64,
) {
    for dtype in [DType::F64, DType::F32] {
        for ps in grid {
            for as_tensor in [false, true] {
                // what the distribution actually sees: scalars stay f64, tensors round
                let seen: Vec<f64> = ps.iter().map(|&p| if as_tensor { round_to(p, dtype) } else { p }).collect();
                let params = ps
                    .iter()
                    .map(|&p| if as_tensor { Param::from(tensor(&[p], &[1], dtype)) } else { Param::from(p) })
                    .collect();
                let x: Vec<f64> = xs(ps).iter().map(|&x| round_to(x, dtype)).collect();
                let got = host(&make(params).unwrap().log_prob(&tensor(&x, &[x.len()], dtype)).unwrap());
                for (xi, gi) in x.iter().zip(got) {
                    let what = format!("{name}{ps:?} at {xi} ({dtype:?}, tensor params: {as_tensor})");
                    assert_close(&what, gi, oracle(&seen, *xi), tol(dtype));
                }
            }
        }
    }
}

/// All pairs (a, b) of two lists, as parameter tuples.
fn pairs(a: &[f64], b: &[f64]) -> Vec<Vec<f64>> {
    a.iter().flat_map(|&x| b.iter().map(move |&y| vec![x, y])).collect()
}

fn fixed(xs: &'static [f64]) -> impl Fn(&[f64]) -> Vec<f64> {
    move |_| xs.to_vec()
}

#[test]
fn location_scale_families_match_statrs() {
    let normal_grid = pairs(&[-3.0, 0.0, 2.5], &[0.1, 1.0, 7.0]);
    check_values(
        "Normal",
        &normal_grid,
        &fixed(&[-20.0, -3.1, -0.7, 0.0, 0.3, 2.5, 11.0]),
        &|p| Ok(Box::new(Normal::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::Normal::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
    check_values(
        "LogNormal",
        &pairs(&[-1.0, 0.0, 1.5], &[0.3, 1.0, 2.5]),
        &fixed(&[0.01, 0.5, 1.0, 2.7, 30.0]),
        &|p| Ok(Box::new(LogNormal::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::LogNormal::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
    check_values(
        "Cauchy",
        &pairs(&[-2.0, 0.0, 3.0], &[0.5, 1.0, 10.0]),
        &fixed(&[-100.0, -2.0, 0.0, 0.4, 3.0, 1e4]),
        &|p| Ok(Box::new(Cauchy::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::Cauchy::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
    // HalfNormal / HalfCauchy: ln 2 + the density of the full distribution at x ≥ 0
    let scales: Vec<Vec<f64>> = [0.2, 1.0, 5.0].iter().map(|&s| vec![s]).collect();
    check_values(
        "HalfNormal",
        &scales,
        &fixed(&[0.0, 0.1, 1.0, 3.0, 12.0]),
        &|p| Ok(Box::new(HalfNormal::new(p[0].clone())?)),
        &|p, x| LN_2 + sd::Normal::new(0.0, p[0]).unwrap().ln_pdf(x),
    );
    check_values(
        "HalfCauchy",
        &scales,
        &fixed(&[0.0, 0.1, 1.0, 3.0, 120.0]),
        &|p| Ok(Box::new(HalfCauchy::new(p[0].clone())?)),
        &|p, x| LN_2 + sd::Cauchy::new(0.0, p[0]).unwrap().ln_pdf(x),
    );
    let t_grid: Vec<Vec<f64>> = [0.7, 1.0, 3.5, 30.0]
        .iter()
        .flat_map(|&df| {
            pairs(&[0.0, -1.5], &[0.5, 2.0]).into_iter().map(move |mut p| {
                p.insert(0, df);
                p
            })
        })
        .collect();
    check_values(
        "StudentT",
        &t_grid,
        &fixed(&[-50.0, -1.0, 0.0, 0.8, 6.0]),
        &|p| Ok(Box::new(StudentT::new(p[0].clone(), p[1].clone(), p[2].clone())?)),
        &|p, x| sd::StudentsT::new(p[1], p[2], p[0]).unwrap().ln_pdf(x),
    );
    check_values(
        "Uniform",
        &[vec![-1.0, 1.0], vec![0.0, 0.01], vec![3.0, 1e3]],
        &|p| vec![p[0], 0.5 * (p[0] + p[1]), p[1]],
        &|p| Ok(Box::new(Uniform::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::Uniform::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
}

#[test]
fn gamma_and_beta_families_match_statrs() {
    let rates: Vec<Vec<f64>> = [0.1, 1.0, 4.5].iter().map(|&r| vec![r]).collect();
    check_values(
        "Exponential",
        &rates,
        &fixed(&[0.0, 0.01, 1.0, 7.0, 100.0]),
        &|p| Ok(Box::new(Exponential::new(p[0].clone())?)),
        &|p, x| sd::Exp::new(p[0]).unwrap().ln_pdf(x),
    );
    check_values(
        "Gamma",
        &pairs(&[0.3, 1.0, 2.5, 40.0], &[0.2, 1.0, 6.0]),
        &fixed(&[0.001, 0.3, 1.0, 4.2, 30.0]),
        &|p| Ok(Box::new(Gamma::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::Gamma::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
    check_values(
        "InverseGamma",
        &pairs(&[0.5, 1.0, 3.0, 12.0], &[0.3, 1.0, 5.0]),
        &fixed(&[0.05, 0.4, 1.0, 3.0, 25.0]),
        &|p| Ok(Box::new(InverseGamma::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::InverseGamma::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
    check_values(
        "Beta",
        &pairs(&[0.4, 1.0, 2.5, 30.0], &[0.6, 1.0, 7.0]),
        &fixed(&[0.001, 0.2, 0.5, 0.77, 0.999]),
        &|p| Ok(Box::new(Beta::new(p[0].clone(), p[1].clone())?)),
        &|p, x| sd::Beta::new(p[0], p[1]).unwrap().ln_pdf(x),
    );
}

#[test]
fn discrete_families_match_statrs() {
    let sigmoid = |l: f64| 1.0 / (1.0 + (-l).exp());
    let logits: Vec<Vec<f64>> = [-4.0, -0.5, 0.0, 2.0, 5.0].iter().map(|&l| vec![l]).collect();
    check_values(
        "Bernoulli",
        &logits,
        &fixed(&[0.0, 1.0]),
        &|p| Ok(Box::new(Bernoulli::new(p[0].clone())?)),
        &|p, y| sd::Bernoulli::new(sigmoid(p[0])).unwrap().ln_pmf(y as u64),
    );
    check_values(
        "Binomial",
        &pairs(&[1.0, 10.0, 60.0], &[-3.0, -0.2, 0.0, 1.5, 4.0]),
        &|p| {
            let n = p[0];
            vec![0.0, 1.0, (n / 3.0).round(), n - 1.0, n]
        },
        &|p| Ok(Box::new(Binomial::new(p[0].clone(), p[1].clone())?)),
        &|p, k| sd::Binomial::new(sigmoid(p[1]), p[0] as u64).unwrap().ln_pmf(k as u64),
    );
    let log_rates: Vec<Vec<f64>> = [-2.0, 0.0, 1.3, 3.0].iter().map(|&l| vec![l]).collect();
    check_values(
        "Poisson",
        &log_rates,
        &fixed(&[0.0, 1.0, 3.0, 10.0, 40.0]),
        &|p| Ok(Box::new(Poisson::new(p[0].clone())?)),
        &|p, k| sd::Poisson::new(p[0].exp()).unwrap().ln_pmf(k as u64),
    );
}

#[test]
fn categorical_matches_statrs_for_every_index_dtype() {
    let logits = [[0.3, -1.2, 2.0, 0.0], [-5.0, 4.0, 4.0, 1.5], [0.0, 0.0, 0.0, 0.0]];
    for dtype in [DType::F64, DType::F32] {
        let flat: Vec<f64> = logits.iter().flatten().copied().collect();
        let batched = tensor(&flat, &[3, 4], dtype);
        for (row, l) in logits.iter().enumerate() {
            let probs: Vec<f64> = l.iter().map(|&v| round_to(v, dtype).exp()).collect();
            let oracle = sd::Categorical::new(&probs).unwrap();
            let one = Categorical::new(tensor(l, &[4], dtype)).unwrap();
            for idx_dtype in [DType::U8, DType::U32, DType::I64, DType::F32, DType::F64] {
                let k = tensor(&[2.0, 0.0, 3.0, 1.0, 2.0], &[5], idx_dtype);
                let got = host(&one.log_prob(&k).unwrap());
                for (ki, gi) in [2u64, 0, 3, 1, 2].iter().zip(got) {
                    assert_close(&format!("Categorical{l:?} at {ki}"), gi, oracle.ln_pmf(*ki), tol(dtype));
                }
            }
            // batched logits [3, 4] with an index per row: the gather path
            let k = Tensor::new(&[1u32, 3, 2], &DEV).unwrap();
            let got = host(&Categorical::new(&batched).unwrap().log_prob(&k).unwrap());
            let want = oracle.ln_pmf([1u64, 3, 2][row]);
            assert_close(&format!("Categorical batched row {row}"), got[row], want, tol(dtype));
        }
    }
}

#[test]
fn dirichlet_matches_statrs() {
    let alphas = [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [2.0, 0.7, 9.0], [30.0, 1.0, 4.5]];
    let points = [[0.2, 0.3, 0.5], [0.01, 0.01, 0.98], [0.6, 0.39, 0.01]];
    for dtype in [DType::F64, DType::F32] {
        for alpha in alphas {
            let oracle = sd::Dirichlet::new(alpha.to_vec()).unwrap();
            let flat: Vec<f64> = points.iter().flatten().copied().collect();
            let x = tensor(&flat, &[3, 3], dtype);
            let mut params = vec![Param::from(tensor(&alpha, &[3], dtype))];
            if alpha.iter().all(|&a| a == alpha[0]) {
                params.push(Param::from(alpha[0])); // symmetric: the scalar path
            }
            for p in params {
                let got = host(&Dirichlet::new(p).unwrap().log_prob(&x).unwrap());
                for (pt, gi) in points.iter().zip(got) {
                    // statrs takes nalgebra's DVector; clone one out of statrs rather than naming nalgebra
                    let mut v = oracle.alpha().clone();
                    for (i, xi) in pt.iter().enumerate() {
                        v[i] = round_to(*xi, dtype);
                    }
                    assert_close(
                        &format!("Dirichlet{alpha:?} at {pt:?} ({dtype:?})"),
                        gi,
                        oracle.ln_pdf(&v),
                        tol(dtype),
                    );
                }
            }
        }
    }
}

/// L Lᵀ for a row-major D×D lower-triangular L.
fn lower_times_transpose(l: &[f64], d: usize) -> Vec<f64> {
    (0..d * d).map(|k| (0..d).map(|j| l[(k / d) * d + j] * l[(k % d) * d + j]).sum()).collect()
}

#[test]
fn multivariate_normal_matches_statrs() {
    let d = 3;
    let loc = [0.5, -1.0, 2.0];
    // lower triangular with junk above the diagonal, which must be ignored
    let l = [1.3, 99.0, -7.0, 0.4, 0.8, 55.0, -0.6, 0.25, 2.1];
    let l_clean: Vec<f64> = (0..9).map(|k| if k % d > k / d { 0.0 } else { l[k] }).collect();
    let xs = [[0.0, 0.0, 0.0], [0.5, -1.0, 2.0], [3.0, -2.5, -1.0], [-10.0, 4.0, 7.5]];
    let oracle = sd::MultivariateNormal::new(loc.to_vec(), lower_times_transpose(&l_clean, d)).unwrap();
    let mut v = sd::Dirichlet::new(vec![1.0; d]).unwrap().alpha().clone(); // a DVector of length d
    for dtype in [DType::F64, DType::F32] {
        let flat: Vec<f64> = xs.iter().flatten().copied().collect();
        let x = tensor(&flat, &[4, d], dtype);
        let mvn = MultivariateNormal::new(tensor(&loc, &[d], dtype), tensor(&l, &[d, d], dtype)).unwrap();
        let got = host(&mvn.log_prob(&x).unwrap());
        for (pt, gi) in xs.iter().zip(got) {
            pt.iter().enumerate().for_each(|(i, &xi)| v[i] = xi);
            assert_close(&format!("MultivariateNormal at {pt:?} ({dtype:?})"), gi, oracle.ln_pdf(&v), tol(dtype));
        }
        // scalar loc and scale_tril: N(1, 0.7² I)
        let iso = sd::MultivariateNormal::new(
            vec![1.0; d],
            lower_times_transpose(&[0.7, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.7], d),
        )
        .unwrap();
        let got = host(&MultivariateNormal::new(1.0, 0.7).unwrap().log_prob(&x).unwrap());
        for (pt, gi) in xs.iter().zip(got) {
            pt.iter().enumerate().for_each(|(i, &xi)| v[i] = xi);
            assert_close(
                &format!("isotropic MultivariateNormal at {pt:?} ({dtype:?})"),
                gi,
                iso.ln_pdf(&v),
                tol(dtype),
            );
        }
    }
}

/// The Cholesky factor (row-major) of a 3×3 correlation matrix from r = L₂₁ and (a, b) = (L₃₁, L₃₂).
fn chol3(r: f64, a: f64, b: f64) -> Vec<f64> {
    vec![1.0, 0.0, 0.0, r, (1.0 - r * r).sqrt(), 0.0, a, b, (1.0 - a * a - b * b).sqrt()]
}

#[test]
fn lkj_cholesky_matches_its_factorisation() {
    let ln_beta = statrs::function::beta::ln_beta;
    for eta in [0.5, 1.0, 2.0, 3.7] {
        // K = 2: (r + 1)/2 ~ Beta(η, η), so log p(L) = Beta ln_pdf((r + 1)/2) − ln 2
        let beta = sd::Beta::new(eta, eta).unwrap();
        for r in [-0.9f64, -0.3, 0.0, 0.55, 0.99] {
            let l = [1.0, 0.0, r, (1.0 - r * r).sqrt()];
            for p in [Param::from(eta), Param::from(tensor(&[eta], &[1], DType::F64))] {
                let got = host(&LkjCholesky::new(2, p).unwrap().log_prob(&tensor(&l, &[2, 2], DType::F64)).unwrap())[0];
                assert_close(&format!("LKJ K=2 η={eta} r={r}"), got, beta.ln_pdf((r + 1.0) / 2.0) - LN_2, 1e-10);
            }
        }
        // K = 3: log p = (2η−1) ln L₂₂ + (2η−2) ln L₃₃ − ln(B(½, η+½) · π/η)
        for (r, a, b) in [(0.0, 0.0, 0.0), (0.5, -0.3, 0.6), (-0.8, 0.1, -0.2), (0.2, 0.9, 0.1)] {
            let l = chol3(r, a, b);
            let want = (2.0 * eta - 1.0) * l[4].ln() + (2.0 * eta - 2.0) * l[8].ln()
                - ln_beta(0.5, eta + 0.5)
                - (PI / eta).ln();
            for dtype in [DType::F64, DType::F32] {
                let lt = tensor(&l, &[3, 3], dtype);
                for p in [Param::from(eta), Param::from(tensor(&[eta], &[1], dtype))] {
                    let got = host(&LkjCholesky::new(3, p).unwrap().log_prob(&lt).unwrap())[0];
                    assert_close(&format!("LKJ K=3 η={eta} at {l:?} ({dtype:?})"), got, want, tol(dtype));
                }
            }
        }
    }
    // K = 4, η = 1: uniform over correlation matrices, whose volume is 32π²/27 (Joe 2006; a Monte
    // Carlo estimate made while writing this test gave 11.63 ± 0.04 against 32π²/27 = 11.697)
    let l4 = Tensor::eye(4, DType::F64, &DEV).unwrap();
    let got = host(&LkjCholesky::new(4, 1.0).unwrap().log_prob(&l4).unwrap())[0];
    assert_close("LKJ K=4 η=1", got, -(32.0 * PI * PI / 27.0).ln(), 1e-10);
}

// ------------------------------------------------------------------------------------------
// gradients

/// Autodiff gradients of Σ f(inputs) against central differences, for every input marked in
/// `diff`, every element, in f64.
fn check_grads(name: &str, inputs: &[Tensor], diff: &[bool], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) {
    let vars: Vec<Option<Var>> =
        inputs.iter().zip(diff).map(|(t, &d)| d.then(|| Var::from_tensor(t).unwrap())).collect();
    let live: Vec<Tensor> = inputs
        .iter()
        .zip(&vars)
        .map(|(t, v)| v.as_ref().map_or_else(|| t.clone(), |v| v.as_tensor().clone()))
        .collect();
    let grads = f(&live).unwrap().sum_all().unwrap().backward().unwrap();
    let eval = |ts: &[Tensor]| f(ts).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    for (i, var) in vars.iter().enumerate() {
        let Some(var) = var else { continue };
        // a parameter that does not reach the result has no entry: its gradient is 0
        let auto = grads.get(var.as_tensor()).map_or_else(|| vec![0.0; inputs[i].elem_count()], host);
        let base = host(&inputs[i]);
        for (j, g) in auto.iter().enumerate() {
            let h = 1e-5 * base[j].abs().max(0.1);
            let shifted = |delta: f64| {
                let mut v = base.clone();
                v[j] += delta;
                let mut ts = inputs.to_vec();
                ts[i] = Tensor::from_vec(v, inputs[i].shape(), &DEV).unwrap();
                eval(&ts)
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (g - fd).abs() <= 1e-6 * fd.abs().max(1e-2),
                "{name}: d/d(input {i})[{j}] autodiff {g} vs finite difference {fd}"
            );
        }
    }
}

fn t1(v: &[f64]) -> Tensor {
    tensor(v, &[v.len()], DType::F64)
}

#[test]
fn gradients_of_continuous_densities_match_finite_differences() {
    let x = t1(&[-1.3, 0.2, 2.4]);
    let pos = t1(&[0.3, 1.1, 4.0]);
    let unit = t1(&[0.15, 0.5, 0.85]);
    let loc = t1(&[0.4, -0.5, 1.0]);
    let scale = t1(&[0.7, 1.5, 3.0]);
    let shape = t1(&[0.6, 2.0, 7.5]);
    let all = [true, true, true, true];
    check_grads("Normal", &[x.clone(), loc.clone(), scale.clone()], &all, &|t| {
        Normal::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("LogNormal", &[pos.clone(), loc.clone(), scale.clone()], &all, &|t| {
        LogNormal::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("HalfNormal", &[pos.clone(), scale.clone()], &all, &|t| HalfNormal::new(&t[1])?.log_prob(&t[0]));
    check_grads("HalfCauchy", &[pos.clone(), scale.clone()], &all, &|t| HalfCauchy::new(&t[1])?.log_prob(&t[0]));
    check_grads("Cauchy", &[x.clone(), loc.clone(), scale.clone()], &all, &|t| {
        Cauchy::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("StudentT", &[x.clone(), shape.clone(), loc.clone(), scale.clone()], &all, &|t| {
        StudentT::new(&t[1], &t[2], &t[3])?.log_prob(&t[0])
    });
    check_grads("Exponential", &[pos.clone(), scale.clone()], &all, &|t| Exponential::new(&t[1])?.log_prob(&t[0]));
    check_grads("Gamma", &[pos.clone(), shape.clone(), scale.clone()], &all, &|t| {
        Gamma::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("InverseGamma", &[pos.clone(), shape.clone(), scale.clone()], &all, &|t| {
        InverseGamma::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("Beta", &[unit.clone(), shape.clone(), scale.clone()], &all, &|t| {
        Beta::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("Uniform", &[unit.clone(), t1(&[-1.0, 0.0, 0.1]), t1(&[1.0, 2.0, 0.9])], &all, &|t| {
        Uniform::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    // scalar parameters: the gradient with respect to the value alone
    check_grads("Gamma, scalar parameters", &[pos], &all, &|t| Gamma::new(2.5, 0.5)?.log_prob(&t[0]));
    check_grads("StudentT, scalar parameters", &[x], &all, &|t| StudentT::new(4.0, 1.0, 2.0)?.log_prob(&t[0]));
}

#[test]
fn gradients_of_discrete_and_multivariate_densities_match_finite_differences() {
    let logits = t1(&[-2.0, 0.3, 3.5]);
    let values_fixed = [false, true, true];
    check_grads("Bernoulli", &[t1(&[0.0, 1.0, 1.0]), logits.clone()], &values_fixed, &|t| {
        Bernoulli::new(&t[1])?.log_prob(&t[0])
    });
    check_grads("Binomial", &[t1(&[0.0, 4.0, 12.0]), t1(&[3.0, 9.0, 12.0]), logits.clone()], &values_fixed, &|t| {
        Binomial::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    check_grads("Poisson", &[t1(&[0.0, 2.0, 17.0]), logits.clone()], &values_fixed, &|t| {
        Poisson::new(&t[1])?.log_prob(&t[0])
    });
    let k = Tensor::new(&[2u32, 0, 3], &DEV).unwrap();
    let batched = tensor(&[0.3, -1.2, 2.0, 0.0, -5.0, 4.0, 4.0, 1.5, 0.0, 0.0, 0.0, 0.0], &[3, 4], DType::F64);
    check_grads("Categorical [3, 4]", &[k.clone(), batched], &[false, true], &|t| {
        Categorical::new(&t[1])?.log_prob(&t[0])
    });
    check_grads("Categorical [4]", &[k, t1(&[0.3, -1.2, 2.0, 0.0])], &[false, true], &|t| {
        Categorical::new(&t[1])?.log_prob(&t[0])
    });

    // MultivariateNormal: value [2, 3], loc [3], scale_tril [3, 3] (the entries above the
    // diagonal are ignored, so their gradient is 0 on both sides)
    let x = tensor(&[0.3, -1.0, 2.2, -0.5, 0.8, 0.1], &[2, 3], DType::F64);
    let loc = t1(&[0.5, -1.0, 2.0]);
    let l = tensor(&[1.3, 0.0, 0.0, 0.4, 0.8, 0.0, -0.6, 0.25, 2.1], &[3, 3], DType::F64);
    check_grads("MultivariateNormal", &[x, loc, l], &[true, true, true], &|t| {
        MultivariateNormal::new(&t[1], &t[2])?.log_prob(&t[0])
    });

    // LKJ: the factor and the concentration
    let l = tensor(&chol3(0.5, -0.3, 0.6), &[3, 3], DType::F64);
    check_grads("LkjCholesky", &[l, t1(&[1.7])], &[true, true], &|t| LkjCholesky::new(3, &t[1])?.log_prob(&t[0]));

    // Dirichlet: value [2, 3] and concentration [2, 3]
    let x = tensor(&[0.2, 0.3, 0.5, 0.6, 0.39, 0.01], &[2, 3], DType::F64);
    let alpha = tensor(&[0.5, 2.0, 9.0, 1.0, 3.0, 0.7], &[2, 3], DType::F64);
    check_grads("Dirichlet", &[x, alpha], &[true, true], &|t| Dirichlet::new(&t[1])?.log_prob(&t[0]));
}

// ------------------------------------------------------------------------------------------
// broadcasting and errors

#[test]
fn parameters_broadcast_against_values() {
    let s_locs = tensor(&[-1.0, 0.0, 2.0], &[3, 1], DType::F64);
    let s_scales = tensor(&[0.5, 1.0, 4.0], &[3, 1], DType::F64);
    let x = tensor(&[0.1, 0.7, -2.0, 5.0], &[1, 4], DType::F64);
    let lp = Normal::new(&s_locs, &s_scales).unwrap().log_prob(&x).unwrap();
    assert_eq!(lp.dims(), &[3, 4]);
    let got = host(&lp);
    for (s, (m, sd)) in [(-1.0, 0.5), (0.0, 1.0), (2.0, 4.0)].iter().enumerate() {
        for (n, xv) in [0.1, 0.7, -2.0, 5.0].iter().enumerate() {
            let want = sd::Normal::new(*m, *sd).unwrap().ln_pdf(*xv);
            assert_close("broadcast Normal", got[s * 4 + n], want, 1e-12);
        }
    }
    // the gradient of a broadcast parameter sums over the axis it was broadcast along
    check_grads("Normal [3,1] × [1,4]", &[x.clone(), s_locs.clone(), s_scales.clone()], &[true, true, true], &|t| {
        Normal::new(&t[1], &t[2])?.log_prob(&t[0])
    });
    // scalar parameters keep the value's shape
    let x2 = tensor(&[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], &[2, 3], DType::F32);
    for d in [
        Box::new(Gamma::new(2.0, 1.0).unwrap()) as Box<dyn Distribution>,
        Box::new(Uniform::new(0.0, 4.0).unwrap()),
        Box::new(Beta::new(1.0, 1.0).unwrap()),
        Box::new(Poisson::new(0.3).unwrap()),
    ] {
        assert_eq!(d.log_prob(&x2).unwrap().dims(), &[2, 3]);
    }
    // a tensor parameter that is constant in the value still gets the broadcast shape
    let lo = tensor(&[0.0, -1.0, -2.0], &[3, 1], DType::F64);
    assert_eq!(Uniform::new(&lo, 5.0).unwrap().log_prob(&x).unwrap().dims(), &[3, 4]);
    assert_eq!(Beta::new(&s_scales, 1.0).unwrap().log_prob(&(x.clone() * 0.1).unwrap()).unwrap().dims(), &[3, 4]);
    // multivariate: a batch of scale_tril [2, 1, D, D] against values [1, 5, D] gives [2, 5]
    let l = Tensor::eye(3, DType::F64, &DEV).unwrap().unsqueeze(0).unwrap().unsqueeze(0).unwrap();
    let l = Tensor::cat(&[&l, &(&l * 2.0).unwrap()], 0).unwrap();
    let xs = Tensor::ones((1, 5, 3), DType::F64, &DEV).unwrap();
    let lp = MultivariateNormal::new(0.0, &l).unwrap().log_prob(&xs).unwrap();
    assert_eq!(lp.dims(), &[2, 5]);
    let lp = host(&lp);
    let want_2 = 3.0 * sd::Normal::new(0.0, 2.0).unwrap().ln_pdf(1.0);
    assert_close("batched MultivariateNormal", lp[5], want_2, 1e-12);
    // Dirichlet: a concentration [2, 1, K] against values [4, K] gives [2, 4]
    let alpha = tensor(&[1.0, 2.0, 3.0, 0.5, 0.5, 0.5], &[2, 1, 3], DType::F64);
    let xs = tensor(&[0.2, 0.3, 0.5, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4, 0.6, 0.2, 0.2], &[4, 3], DType::F64);
    assert_eq!(Dirichlet::new(&alpha).unwrap().log_prob(&xs).unwrap().dims(), &[2, 4]);
    // Categorical: logits [2, 1, K] against indices [3] gives [2, 3]
    let logits = tensor(&[0.0, 1.0, 2.0, 3.0, 2.0, 1.0], &[2, 1, 3], DType::F64);
    let k = Tensor::new(&[0i64, 2, 1], &DEV).unwrap();
    assert_eq!(Categorical::new(&logits).unwrap().log_prob(&k).unwrap().dims(), &[2, 3]);
}

fn expect_err<T>(r: Result<T>, words: &[&str]) {
    let Err(e) = r else { panic!("expected an error mentioning {words:?}") };
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "error {msg:?} does not mention {w:?}");
    }
}

#[test]
fn bad_parameters_and_values_are_errors_not_panics() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_err(Normal::new(0.0, bad), &["Normal", "scale"]);
        expect_err(StudentT::new(bad, 0.0, 1.0), &["StudentT", "df"]);
        expect_err(Gamma::new(bad, 1.0), &["Gamma", "shape"]);
        expect_err(Beta::new(1.0, bad), &["Beta", "b"]);
        expect_err(LkjCholesky::new(3, bad), &["LkjCholesky", "concentration"]);
        expect_err(MultivariateNormal::new(0.0, bad), &["MultivariateNormal", "scale_tril"]);
    }
    expect_err(Normal::new(f64::NAN, 1.0), &["Normal", "loc"]);
    expect_err(Uniform::new(1.0, 1.0), &["Uniform", "low", "high"]);
    expect_err(Uniform::new(2.0, -1.0), &["Uniform", "low"]);
    expect_err(Binomial::new(-1.0, 0.0), &["Binomial", "total_count"]);
    expect_err(Poisson::new(f64::INFINITY), &["Poisson", "log_rate"]);
    expect_err(Categorical::new(1.0), &["Categorical", "logits"]);
    expect_err(LkjCholesky::new(1, 1.0), &["LkjCholesky", "dim"]);
    let ints = Tensor::new(&[1u32, 2], &DEV).unwrap();
    expect_err(Normal::new(&ints, 1.0), &["Normal", "loc", "floating-point"]);
    expect_err(Normal::new(0.0, 1.0).unwrap().log_prob(&ints), &["Normal", "value", "floating-point"]);
    expect_err(Poisson::new(0.0).unwrap().log_prob(&ints), &["Poisson", "floating-point"]);
    // no dtype promotion: an f32 parameter with an f64 value
    let x64 = t1(&[0.5, 1.0]);
    let s32 = tensor(&[1.0], &[1], DType::F32);
    expect_err(Normal::new(0.0, &s32).unwrap().log_prob(&x64), &["Normal", "scale", "dtype"]);
    // categorical indices out of range, negative or fractional
    let cat = Categorical::new(t1(&[0.0, 1.0, 2.0])).unwrap();
    expect_err(cat.log_prob(&Tensor::new(&[3u32], &DEV).unwrap()), &["Categorical", "index 3"]);
    expect_err(cat.log_prob(&Tensor::new(&[-1i64], &DEV).unwrap()), &["Categorical", "index -1"]);
    expect_err(cat.log_prob(&t1(&[0.5])), &["Categorical", "index 0.5"]);
    expect_err(cat.log_prob(&Tensor::new(&[u32::MAX], &DEV).unwrap()), &["Categorical"]);
    // shapes of multivariate parameters and values
    expect_err(
        MultivariateNormal::new(t1(&[0.0, 0.0]), Tensor::eye(3, DType::F64, &DEV).unwrap()),
        &["MultivariateNormal", "D = 2"],
    );
    expect_err(MultivariateNormal::new(0.0, t1(&[1.0, 1.0])), &["MultivariateNormal", "scale_tril"]);
    let mvn = MultivariateNormal::new(0.0, Tensor::eye(3, DType::F64, &DEV).unwrap()).unwrap();
    expect_err(mvn.log_prob(&t1(&[1.0, 2.0])), &["MultivariateNormal", "D = 2"]);
    expect_err(
        LkjCholesky::new(3, 1.0).unwrap().log_prob(&Tensor::eye(2, DType::F64, &DEV).unwrap()),
        &["LkjCholesky", "[..., 3, 3]"],
    );
    expect_err(Dirichlet::new(t1(&[1.0, 1.0])).unwrap().log_prob(&t1(&[0.2, 0.3, 0.5])), &["Dirichlet", "K = 3"]);
}

#[test]
fn documented_behaviour_at_the_edges_of_the_support() {
    let at = |d: &dyn Distribution, x: f64| host(&d.log_prob(&t1(&[x])).unwrap())[0];
    // exponent-1 terms with a scalar coefficient of 0 are dropped, as in statrs. The oracle here
    // is the exact ln β or ln 3; the error of a few 1e-15 is statrs's ln Γ, which `elbo` uses
    // (its ln Γ(3) and ln Γ(4) are off by 3.2e-15 and −2.2e-15)
    assert_close("Gamma(1, 2) at 0", at(&Gamma::new(1.0, 2.0).unwrap(), 0.0), 2f64.ln(), 1e-13);
    assert_close("Beta(1, 3) at 0", at(&Beta::new(1.0, 3.0).unwrap(), 0.0), 3f64.ln(), 1e-13);
    assert_eq!(at(&Gamma::new(2.0, 1.0).unwrap(), 0.0), f64::NEG_INFINITY);
    assert!(at(&Gamma::new(2.0, 1.0).unwrap(), -1.0).is_nan());
    assert!(at(&LogNormal::new(0.0, 1.0).unwrap(), 0.0).is_nan());
    // half distributions evaluate the density of |x|; Uniform does not mask
    assert_eq!(at(&HalfNormal::new(1.0).unwrap(), -0.5), at(&HalfNormal::new(1.0).unwrap(), 0.5));
    assert_close("Uniform outside", at(&Uniform::new(0.0, 2.0).unwrap(), 5.0), -LN_2, 1e-15);
    // logit-parameterised forms stay finite far out
    let y = tensor(&[1.0, 0.0, 1.0, 0.0], &[4], DType::F32);
    let l = tensor(&[800.0, 800.0, -800.0, -800.0], &[4], DType::F32);
    assert_eq!(host(&Bernoulli::new(&l).unwrap().log_prob(&y).unwrap()), vec![0.0, -800.0, -800.0, 0.0]);
}
