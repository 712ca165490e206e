//! The bijectors of `elbo::latent`, in f64 unless stated, for every bijector and a few shapes:
//!
//! - round trip: f⁻¹(f(u)) = u to 1e-10 · max(1, |u|) over random and extreme u, up to the limit
//!   where f64 can hold the information (each limit is derived at [`round_trip_range`]);
//! - log|det J| from `forward` equals ln|det| of the central-difference Jacobian of u ↦ the free
//!   constrained coordinates, to 1e-6;
//! - outputs lie in the open support (`check_support` accepts them, and the defining properties
//!   hold to 1e-12) over the range where f64 can represent an interior point, and in its closure,
//!   with a finite log|det J|, for every |u| ≤ 700;
//! - candle's gradient of Σx + Σ log|det J| equals central differences to 1e-6 · max(1, |g|), and
//!   is finite at |u| = 700;
//! - f32 agrees with f64; bad bounds, shapes, values and tensors are rejected with a reason.

use candle_core::{DType, Device, Tensor, Var};
use elbo::latent::Bijector;
use elbo::linalg::to_f64_vec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn host(t: &Tensor) -> Vec<f64> {
    to_f64_vec(t).unwrap()
}

fn cases() -> Vec<(Bijector, Vec<usize>)> {
    let mut cases = vec![(Bijector::Real, vec![]), (Bijector::Positive, vec![])];
    for b in [
        Bijector::Real,
        Bijector::Positive,
        Bijector::PositiveSoftplus,
        Bijector::LowerBounded(0.5),
        Bijector::LowerBounded(-3.0),
        Bijector::LowerBounded(0.0),
        Bijector::UpperBounded(2.0),
        Bijector::UpperBounded(0.0),
        Bijector::Interval(-1.0, 2.0),
        Bijector::Interval(0.0, 1.0),
        Bijector::Interval(-4.0, 0.0),
        Bijector::Interval(-5.0, 0.3),
    ] {
        cases.push((b.clone(), vec![3]));
        cases.push((b, vec![2, 2]));
    }
    for b in [Bijector::Simplex, Bijector::Ordered, Bijector::PositiveOrdered] {
        cases.push((b.clone(), vec![3]));
        cases.push((b.clone(), vec![4]));
        cases.push((b, vec![2, 4]));
    }
    for k in 2..=4 {
        cases.push((Bijector::CorrCholesky, vec![k, k]));
    }
    cases.push((Bijector::CorrCholesky, vec![2, 3, 3]));
    cases
}

/// Unconstrained coordinates per independent copy (element, last-axis vector, K × K matrix).
fn unit(b: &Bijector, shape: &[usize]) -> usize {
    let k = shape.last().copied().unwrap_or(1);
    match b {
        Bijector::Simplex => k - 1,
        Bijector::Ordered | Bijector::PositiveOrdered => k,
        Bijector::CorrCholesky => k * (k - 1) / 2,
        _ => 1,
    }
}

/// Where x = c ± scale·eᵘ next to a bound c stops recovering u to 1e-10 · |u|: x is stored to
/// ulp(c)/2 ≈ 1.1e-16 |c|, so u = log|x − c| − log scale comes back with an error of
/// 1.1e-16 |c| / (scale eᵘ), which reaches 1e-10 · |u| near u = log(|c| / scale) − 16.5. The tests
/// stop at log(|c| / scale) − 14, where the error is at most 1e-11 · |u| (measured: 1e-12). A bound
/// at 0 costs nothing: scale·eᵘ keeps its relative precision down to u ≈ −708 (the tests stop at
/// −700).
fn near_bound(c: f64, scale: f64) -> f64 {
    if c == 0.0 {
        -700.0
    } else {
        ((c.abs() / scale).ln() - 14.0).max(-700.0)
    }
}

/// The per-coordinate range of u over which the round trip is exact to 1e-10 · max(1, |u|).
///
/// - real, positive: the whole of [−700, 700] (eᵘ is a normal f64 for −708 < u < 709).
/// - positive softplus: everywhere, since `special::softplus` is exact on the CPU (log1p of
///   e^{−|u|}); the composite log(1 + eᵘ) of other devices would hold only down to u ≈ −16.
/// - bounds and intervals: up to [`near_bound`] on the side of a nonzero bound; the interval
///   computes x from the nearer bound, so a bound at 0 is exact on either side.
/// - simplex: entries are products z_k Π(1 − z_j) ≈ e^{−Σ|v|}; with K ≤ 4 (three coordinates)
///   and |u| ≤ 200 every entry stays above e^{−600}, a normal f64. Past Σ|v| ≈ 708 entries
///   underflow and u cannot be recovered.
/// - ordered, positive ordered: u_k = log(x_k − x_{k−1}) cancels: the error is
///   1.1e-16 |x_k| / e^{u_k}, so the increments may not be much smaller than the values. With
///   |u| ≤ 6 and K ≤ 4, |x| ≤ 1.3e3 and e^{u} ≥ 2.5e-3, an error below 6e-11 (measured: 7e-13).
///   Past |u| ≈ 8 the bound passes 1e-10. Extreme units whose increments share one scale (all at
///   ±700) are tested as well.
/// - correlation Cholesky: like the simplex, entries of a row are ≈ e^{−Σ|u|}; rows hold at most
///   3 coordinates here, so |u| ≤ 200 keeps them normal.
fn round_trip_range(b: &Bijector) -> (f64, f64) {
    match *b {
        Bijector::LowerBounded(a) => (near_bound(a, 1.0), 700.0),
        Bijector::UpperBounded(ub) => (near_bound(ub, 1.0), 700.0),
        Bijector::Interval(a, ub) => (near_bound(a, ub - a), -near_bound(ub, ub - a)),
        Bijector::Simplex | Bijector::CorrCholesky => (-200.0, 200.0),
        Bijector::Ordered | Bijector::PositiveOrdered => (-6.0, 6.0),
        _ => (-700.0, 700.0),
    }
}

/// The per-coordinate range of u whose image f64 can hold strictly inside the support.
///
/// - next to a nonzero bound c, x = c ± scale·eᵘ rounds onto c once scale·eᵘ < ulp(c)/2, that is
///   for u < log(|c| / scale) − 36.7: the range stops at − 35. Softplus is exact on the CPU, so
///   its image stays positive down to −700.
/// - ordered: x_k > x_{k−1} in f64 needs e^{u_k} > ulp(x_{k−1}) ≈ 2.2e-16 · K e^{max u}, so the
///   span of u must stay below 36 − log K; [−15, 15] spans 30.
/// - simplex and correlation: as for the round trip (entries must not underflow to 0).
fn interior_range(b: &Bijector) -> (f64, f64) {
    let strict = |c: f64, scale: f64| if c == 0.0 { -700.0 } else { (c.abs() / scale).ln() - 35.0 };
    match *b {
        Bijector::LowerBounded(a) => (strict(a, 1.0), 700.0),
        Bijector::UpperBounded(ub) => (strict(ub, 1.0), 700.0),
        Bijector::Interval(a, ub) => (strict(a, ub - a), -strict(ub, ub - a)),
        Bijector::Ordered | Bijector::PositiveOrdered => (-15.0, 15.0),
        _ => round_trip_range(b),
    }
}

/// Hand-picked units at the edge of what f64 allows: the ends of the range for elementwise
/// bijectors; for the others, one coordinate at ±700 with the rest at 0 (simplex, correlation),
/// and increments of one scale (ordered).
fn extreme_units(b: &Bijector, n: usize) -> Vec<Vec<f64>> {
    let (lo, hi) = round_trip_range(b);
    match b {
        Bijector::Simplex | Bijector::CorrCholesky => (0..n)
            .flat_map(|i| {
                [-700.0, 700.0].map(|v| {
                    let mut u = vec![0.0; n];
                    u[i] = v;
                    u
                })
            })
            .collect(),
        Bijector::Ordered => vec![
            vec![700.0; n],
            std::iter::once(0.0).chain(std::iter::repeat_n(-700.0, n - 1)).collect(),
            std::iter::once(-700.0).chain(std::iter::repeat_n(0.0, n - 1)).collect(),
            std::iter::once(700.0).chain(std::iter::repeat_n(6.6, n - 1)).collect(),
        ],
        Bijector::PositiveOrdered => vec![vec![700.0; n], vec![-700.0; n], vec![-6.0; n]],
        _ => vec![vec![lo], vec![hi], vec![0.0]],
    }
}

/// S draws of u for a block: the extreme units first (cycled), then uniform ones in `range`.
fn draws(b: &Bijector, shape: &[usize], s: usize, range: (f64, f64), extremes: bool, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = b.unconstrained_len(shape).unwrap();
    let unit = unit(b, shape);
    let special = if extremes { extreme_units(b, unit) } else { vec![] };
    let units = s * n / unit.max(1);
    (0..units)
        .flat_map(|i| match special.get(i) {
            Some(u) => u.clone(),
            None => (0..unit).map(|_| rng.random_range(range.0..=range.1)).collect(),
        })
        .collect()
}

fn forward(b: &Bijector, u: &[f64], shape: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let n = b.unconstrained_len(shape).unwrap();
    let t = Tensor::from_vec(u.to_vec(), (u.len() / n, n), &Device::Cpu).unwrap();
    let (x, log_det) = b.forward(&t, shape).unwrap();
    let mut dims = vec![u.len() / n];
    dims.extend(shape);
    assert_eq!(x.dims(), dims.as_slice(), "{b} {shape:?}");
    assert_eq!(log_det.dims(), &[u.len() / n]);
    (host(&x), host(&log_det))
}

fn block_len(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[test]
fn round_trip_recovers_u_to_1e_10() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (b, shape) in cases() {
        let s = 48;
        let u = draws(&b, &shape, s, round_trip_range(&b), true, &mut rng);
        let n = b.unconstrained_len(&shape).unwrap();
        let (x, _) = forward(&b, &u, &shape);
        let mut dims = vec![s];
        dims.extend(&shape);
        let x = Tensor::from_vec(x, dims, &Device::Cpu).unwrap();
        let back = b.inverse(&x, &shape).unwrap_or_else(|e| panic!("{b} {shape:?}: {e}"));
        assert_eq!((back.dims(), back.dtype()), (&[s, n][..], DType::F64));
        for (i, (want, got)) in u.iter().zip(host(&back)).enumerate() {
            let err = (want - got).abs() / want.abs().max(1.0);
            assert!(err <= 1e-10, "{b} {shape:?}: draw {} coordinate {}: u = {want}, back {got}", i / n, i % n);
        }
    }
}

/// ln |det A| by Gaussian elimination with partial pivoting.
fn ln_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut total = 0.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs())).unwrap();
        if p != c {
            for j in 0..n {
                a.swap(c * n + j, p * n + j);
            }
        }
        let pivot = a[c * n + c];
        total += pivot.abs().ln();
        for i in c + 1..n {
            let f = a[i * n + c] / pivot;
            for j in c..n {
                a[i * n + j] -= f * a[c * n + j];
            }
        }
    }
    total
}

/// The constrained coordinates that the log-determinant convention differentiates: all of x for
/// elementwise and ordered bijectors, x_1 … x_{K−1} of each simplex, the strictly lower entries
/// (row-major) of each correlation factor.
fn free_coordinates(b: &Bijector, shape: &[usize], x: &[f64]) -> Vec<f64> {
    let k = shape.last().copied().unwrap_or(1);
    match b {
        Bijector::Simplex => x.chunks(k).flat_map(|v| v[..k - 1].to_vec()).collect(),
        Bijector::CorrCholesky => {
            x.chunks(k * k).flat_map(|l| (1..k).flat_map(move |i| (0..i).map(move |j| l[i * k + j]))).collect()
        }
        _ => x.to_vec(),
    }
}

#[test]
fn log_det_matches_the_finite_difference_jacobian() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let h = 1e-6;
    for (b, shape) in cases() {
        let n = b.unconstrained_len(&shape).unwrap();
        let u = draws(&b, &shape, 3, (-2.0, 2.0), false, &mut rng);
        let (_, log_det) = forward(&b, &u, &shape);
        for (d, u) in u.chunks(n).enumerate() {
            // one batch: row 2i is u + h eᵢ, row 2i + 1 is u − h eᵢ
            let mut batch = Vec::with_capacity(2 * n * n);
            for i in 0..n {
                for sign in [1.0, -1.0] {
                    batch.extend(u.iter().enumerate().map(|(j, v)| if j == i { v + sign * h } else { *v }));
                }
            }
            let (x, _) = forward(&b, &batch, &shape);
            let rows: Vec<Vec<f64>> = x.chunks(block_len(&shape)).map(|x| free_coordinates(&b, &shape, x)).collect();
            assert_eq!(rows[0].len(), n);
            let mut jac = vec![0.0; n * n];
            for i in 0..n {
                for r in 0..n {
                    jac[r * n + i] = (rows[2 * i][r] - rows[2 * i + 1][r]) / (2.0 * h);
                }
            }
            let want = ln_abs_det(jac, n);
            assert!(
                (log_det[d] - want).abs() < 1e-6,
                "{b} {shape:?} draw {d}: log|J| {} vs numerical {want}",
                log_det[d]
            );
        }
    }
}

/// Closed-support properties of one draw, and finite values.
fn assert_in_closure(b: &Bijector, shape: &[usize], x: &[f64], what: &str) {
    assert!(x.iter().all(|v| v.is_finite()), "{what}: {x:?}");
    let k = shape.last().copied().unwrap_or(1);
    match *b {
        Bijector::Positive | Bijector::PositiveSoftplus => assert!(x.iter().all(|&v| v >= 0.0), "{what}: {x:?}"),
        Bijector::LowerBounded(a) => assert!(x.iter().all(|&v| v >= a), "{what}: {x:?}"),
        Bijector::UpperBounded(ub) => assert!(x.iter().all(|&v| v <= ub), "{what}: {x:?}"),
        Bijector::Interval(a, ub) => assert!(x.iter().all(|&v| a <= v && v <= ub), "{what}: {x:?}"),
        Bijector::Simplex => {
            for v in x.chunks(k) {
                assert!(v.iter().all(|&v| v >= 0.0), "{what}: {v:?}");
                assert!((v.iter().sum::<f64>() - 1.0).abs() <= 1e-12, "{what}: {v:?}");
            }
        }
        Bijector::Ordered | Bijector::PositiveOrdered => {
            for v in x.chunks(k) {
                assert!(v.windows(2).all(|w| w[1] >= w[0]), "{what}: {v:?}");
                assert!(*b == Bijector::Ordered || v[0] >= 0.0, "{what}: {v:?}");
            }
        }
        Bijector::CorrCholesky => {
            for l in x.chunks(k * k) {
                for i in 0..k {
                    let row = &l[i * k..(i + 1) * k];
                    assert!(row[i + 1..].iter().all(|&v| v == 0.0), "{what}: row {i} of {l:?}");
                    assert!(row[i] >= 0.0, "{what}: row {i} of {l:?}");
                    let norm = row.iter().fold(0.0f64, |acc, v| acc.hypot(*v));
                    assert!((norm - 1.0).abs() <= 1e-12, "{what}: row {i} of {l:?} has norm {norm}");
                }
            }
        }
        _ => {}
    }
}

/// Open-support properties: accepted by check_support, and strictly inside (1e-12 for the
/// equality constraints, which `assert_in_closure` checks).
fn assert_in_interior(b: &Bijector, shape: &[usize], x: &[f64], what: &str) {
    assert_in_closure(b, shape, x, what);
    assert_eq!(b.check_support(x, shape), None, "{what}: {x:?}");
    let k = shape.last().copied().unwrap_or(1);
    match *b {
        Bijector::Positive | Bijector::PositiveSoftplus | Bijector::Simplex => {
            assert!(x.iter().all(|&v| v > 0.0), "{what}: {x:?}")
        }
        Bijector::LowerBounded(a) => assert!(x.iter().all(|&v| v > a), "{what}: {x:?}"),
        Bijector::UpperBounded(ub) => assert!(x.iter().all(|&v| v < ub), "{what}: {x:?}"),
        Bijector::Interval(a, ub) => assert!(x.iter().all(|&v| a < v && v < ub), "{what}: {x:?}"),
        Bijector::Ordered | Bijector::PositiveOrdered => {
            for v in x.chunks(k) {
                assert!(v.windows(2).all(|w| w[1] > w[0]), "{what}: {v:?}");
                assert!(*b == Bijector::Ordered || v[0] > 0.0, "{what}: {v:?}");
            }
        }
        Bijector::CorrCholesky => {
            assert!(x.chunks(k * k).all(|l| (0..k).all(|i| l[i * k + i] > 0.0)), "{what}: {x:?}")
        }
        _ => {}
    }
}

#[test]
fn outputs_stay_in_the_support() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (b, shape) in cases() {
        let len = block_len(&shape);
        // interior: random u in the representable range, plus its ends
        let (lo, hi) = interior_range(&b);
        let u = draws(&b, &shape, 64, (lo, hi), false, &mut rng);
        let ends: Vec<f64> = (0..b.unconstrained_len(&shape).unwrap()).map(|i| [lo, hi][i % 2]).collect();
        let u = [u, ends.clone(), ends.iter().map(|v| if *v == lo { hi } else { lo }).collect()].concat();
        let (x, log_det) = forward(&b, &u, &shape);
        assert!(log_det.iter().all(|v| v.is_finite()), "{b} {shape:?}: {log_det:?}");
        for (d, x) in x.chunks(len).enumerate() {
            assert_in_interior(&b, &shape, x, &format!("{b} {shape:?} interior draw {d}"));
        }
        // anywhere in [−700, 700], extremes included: the closure, and finite log|J|
        let mut u = draws(&b, &shape, 64, (-700.0, 700.0), true, &mut rng);
        u.extend(std::iter::repeat_n([700.0, -700.0], b.unconstrained_len(&shape).unwrap()).flatten());
        let (x, log_det) = forward(&b, &u, &shape);
        assert!(log_det.iter().all(|v| v.is_finite()), "{b} {shape:?}: {log_det:?}");
        for (d, x) in x.chunks(len).enumerate() {
            assert_in_closure(&b, &shape, x, &format!("{b} {shape:?} extreme draw {d}"));
        }
    }
}

/// y(u) = Σ x + Σ log|det J| over a batch, and its gradient from candle.
fn autodiff(b: &Bijector, u: &[f64], shape: &[usize]) -> (f64, Vec<f64>) {
    let n = b.unconstrained_len(shape).unwrap();
    let var = Var::from_tensor(&Tensor::from_vec(u.to_vec(), (u.len() / n, n), &Device::Cpu).unwrap()).unwrap();
    let (x, log_det) = b.forward(var.as_tensor(), shape).unwrap();
    let y = (x.sum_all().unwrap() + log_det.sum_all().unwrap()).unwrap();
    let grads = y.backward().unwrap();
    let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{b} {shape:?}: no gradient"));
    (y.to_scalar::<f64>().unwrap(), host(g))
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (b, shape) in cases() {
        let n = b.unconstrained_len(&shape).unwrap();
        let mut u = draws(&b, &shape, 2, (-3.0, 3.0), false, &mut rng);
        // a quarter of the coordinates far out, where a NaN from an unselected branch would show.
        // Not +25 for the ordered bijectors: x_k = x_{k−1} + e^{u_k} sums values of all scales,
        // and x ≈ e²⁵ rounds to 1.5e-5, which swallows the finite difference of a small e^{u_j}.
        let ordered = matches!(b, Bijector::Ordered | Bijector::PositiveOrdered);
        for v in u.iter_mut().step_by(4) {
            *v = if rng.random_bool(0.5) && !ordered { 25.0 } else { -25.0 };
        }
        let (_, grad) = autodiff(&b, &u, &shape);
        // y(u + h eᵢ) − y(u − h eᵢ), differenced term by term: untouched terms cancel exactly
        // instead of adding the rounding of large ones (e²⁵) to a small derivative
        let dy = |up: &[f64], down: &[f64]| {
            let ((x1, l1), (x0, l0)) = (forward(&b, up, &shape), forward(&b, down, &shape));
            x1.iter().zip(&x0).map(|(a, b)| a - b).sum::<f64>() + l1.iter().zip(&l0).map(|(a, b)| a - b).sum::<f64>()
        };
        for i in 0..u.len() {
            let h = 1e-6 * u[i].abs().max(1.0);
            let (mut up, mut down) = (u.clone(), u.clone());
            up[i] += h;
            down[i] -= h;
            let fd = dy(&up, &down) / (2.0 * h);
            assert!(
                (grad[i] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                "{b} {shape:?}: draw {} coordinate {}: autodiff {} vs finite differences {fd} at u = {}",
                i / n,
                i % n,
                grad[i],
                u[i]
            );
        }
        // finite at the extremes
        let u = draws(&b, &shape, 16, (-700.0, 700.0), true, &mut rng);
        let (y, grad) = autodiff(&b, &u, &shape);
        assert!(y.is_finite() && grad.iter().all(|g| g.is_finite()), "{b} {shape:?}: y {y}, grad {grad:?}");
    }
}

#[test]
fn f32_agrees_with_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (b, shape) in cases() {
        let n = b.unconstrained_len(&shape).unwrap();
        let u = draws(&b, &shape, 8, (-3.0, 3.0), false, &mut rng);
        let (x64, ld64) = forward(&b, &u, &shape);
        let t = Tensor::from_vec(u.clone(), (8, n), &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
        let (x32, ld32) = b.forward(&t, &shape).unwrap();
        assert_eq!((x32.dtype(), ld32.dtype()), (DType::F32, DType::F32));
        for (a, e) in host(&x32).iter().zip(&x64) {
            assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{b} {shape:?}: x f32 {a} vs f64 {e}");
        }
        for (a, e) in host(&ld32).iter().zip(&ld64) {
            assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{b} {shape:?}: log|J| f32 {a} vs f64 {e}");
        }
        let back = b.inverse(&x32, &shape).unwrap();
        assert_eq!(back.dtype(), DType::F32);
        for (a, e) in host(&back).iter().zip(&u) {
            // f32 rounding of x (6e-8), amplified at most e^6 by the ordered increments
            assert!((a - e).abs() <= 1e-4 * e.abs().max(1.0), "{b} {shape:?}: f32 round trip {a} vs {e}");
        }
    }
}

#[test]
fn one_element_simplex_vector_and_matrix() {
    let u0 = Tensor::zeros((3, 0), DType::F64, &Device::Cpu).unwrap();
    let (x, log_det) = Bijector::Simplex.forward(&u0, &[2, 1]).unwrap();
    assert_eq!((x.dims(), host(&x)), (&[3, 2, 1][..], vec![1.0; 6]));
    assert_eq!(host(&log_det), vec![0.0; 3]);
    let (l, _) = Bijector::CorrCholesky.forward(&u0, &[1, 1]).unwrap();
    assert_eq!((l.dims(), host(&l)), (&[3, 1, 1][..], vec![1.0; 3]));
    assert_eq!(Bijector::Simplex.inverse(&x, &[2, 1]).unwrap().dims(), &[3, 0]);
    let u = Tensor::new(&[[-2.0f64], [5.0]], &Device::Cpu).unwrap();
    let (x, log_det) = Bijector::Ordered.forward(&u, &[1]).unwrap();
    assert_eq!((host(&x), host(&log_det)), (vec![-2.0, 5.0], vec![0.0, 0.0]));
}

#[test]
fn validate_and_unconstrained_len_give_reasons() {
    for bad in [
        Bijector::LowerBounded(f64::NAN),
        Bijector::UpperBounded(f64::INFINITY),
        Bijector::Interval(1.0, 0.0),
        Bijector::Interval(0.0, 0.0),
        Bijector::Interval(f64::NEG_INFINITY, 0.0),
        Bijector::Interval(-1e308, 1e308),
    ] {
        let reason = bad.validate().unwrap_err();
        assert!(!reason.is_empty(), "{bad}");
        let u = Tensor::zeros((1, 1), DType::F64, &Device::Cpu).unwrap();
        let err = bad.forward(&u, &[]).unwrap_err().to_string();
        assert!(err.contains(&reason), "{err}");
    }
    assert!(Bijector::Interval(1.0, 1.0 + 1e-12).validate().is_ok());
    assert!(Bijector::Interval(1.0, 0.0).validate().unwrap_err().contains("empty"));

    let len = |b: Bijector, shape: &[usize]| b.unconstrained_len(shape);
    assert_eq!(len(Bijector::Positive, &[]), Ok(1));
    assert_eq!(len(Bijector::Interval(0.0, 1.0), &[2, 3]), Ok(6));
    assert_eq!(len(Bijector::Simplex, &[4]), Ok(3));
    assert_eq!(len(Bijector::Simplex, &[2, 4]), Ok(6));
    assert_eq!(len(Bijector::Simplex, &[1]), Ok(0));
    assert_eq!(len(Bijector::Ordered, &[2, 4]), Ok(8));
    assert_eq!(len(Bijector::CorrCholesky, &[4, 4]), Ok(6));
    assert_eq!(len(Bijector::CorrCholesky, &[2, 3, 3]), Ok(6));
    for (b, shape, words) in [
        (Bijector::Simplex, vec![], "last axis"),
        (Bijector::Ordered, vec![], "last axis"),
        (Bijector::Simplex, vec![2, 0], "length 0"),
        (Bijector::Real, vec![0], "length 0"),
        (Bijector::CorrCholesky, vec![3], "two axes"),
        (Bijector::CorrCholesky, vec![3, 4], "3 × 4"),
        (Bijector::Positive, vec![usize::MAX, 2], "too large"),
    ] {
        let reason = b.unconstrained_len(&shape).unwrap_err();
        assert!(reason.contains(words), "{b} {shape:?}: {reason}");
    }
}

#[test]
fn check_support_names_the_first_violation() {
    let cases: Vec<(Bijector, Vec<usize>, Vec<f64>, &str)> = vec![
        (Bijector::Real, vec![2], vec![0.0, f64::NAN], "element 1 = NaN is not finite"),
        (Bijector::Positive, vec![3], vec![1.0, -0.5, 2.0], "element 1 = -0.5 is not positive"),
        (Bijector::PositiveSoftplus, vec![], vec![0.0], "element 0 = 0 is not positive"),
        (Bijector::LowerBounded(0.5), vec![2], vec![1.0, 0.5], "element 1 = 0.5 is not above the lower bound 0.5"),
        (Bijector::UpperBounded(2.0), vec![1], vec![2.5], "element 0 = 2.5 is not below the upper bound 2"),
        (Bijector::Interval(0.0, 1.0), vec![2], vec![0.5, 1.0], "element 1 = 1 is not inside (0, 1)"),
        (Bijector::Simplex, vec![3], vec![0.2, 0.3, 0.7], "elements 0 to 2 sum to 1.2, not 1"),
        (Bijector::Simplex, vec![3], vec![0.5, 0.0, 0.5], "element 1 = 0 is not positive"),
        (Bijector::Simplex, vec![2, 2], vec![0.5, 0.5, 0.25, 0.5], "elements 2 to 3 sum to 0.75, not 1"),
        (Bijector::Ordered, vec![3], vec![1.0, 2.0, 2.0], "element 2 = 2 is not greater than element 1 = 2"),
        (Bijector::PositiveOrdered, vec![2], vec![-1.0, 2.0], "element 0 = -1 is not positive"),
        (Bijector::CorrCholesky, vec![2, 2], vec![1.0, 0.1, 0.6, 0.8], "element 1 = 0.1 is above the diagonal, not 0"),
        (Bijector::CorrCholesky, vec![2, 2], vec![1.0, 0.0, 0.6, -0.8], "element 3 = -0.8 is on the diagonal"),
        (Bijector::CorrCholesky, vec![2, 2], vec![1.0, 0.0, 0.6, 0.6], "row 1 has norm 0.848"),
        (
            Bijector::CorrCholesky,
            vec![2, 2, 2],
            vec![1.0, 0.0, 0.6, 0.8, 0.9, 0.0, 0.6, 0.8],
            "matrix 1, row 0 has norm 0.9",
        ),
        (Bijector::Positive, vec![3], vec![1.0, 2.0], "has 3 values, got 2"),
        (Bijector::Interval(1.0, 0.0), vec![1], vec![0.5], "empty"),
    ];
    for (b, shape, x, want) in cases {
        let got = b.check_support(&x, &shape).unwrap_or_else(|| panic!("{b} accepted {x:?}"));
        assert!(got.contains(want), "{b} {x:?}: {got:?} does not say {want:?}");
    }
    // inside, within the 1e-8 tolerance of the equality constraints
    assert_eq!(Bijector::Simplex.check_support(&[0.5, 0.5 + 5e-9], &[2]), None);
    assert_eq!(Bijector::CorrCholesky.check_support(&[1.0, 0.0, 0.6, 0.8 + 5e-9], &[2, 2]), None);
}

#[test]
fn inverse_and_forward_reject_bad_input() {
    let x = Tensor::new(&[[0.2f64, 0.8], [0.5, 0.6]], &Device::Cpu).unwrap();
    let err = Bijector::Simplex.inverse(&x, &[2]).unwrap_err().to_string();
    assert!(err.contains("draw 1") && err.contains("sum to 1.1"), "{err}");
    let err = Bijector::Simplex.inverse(&x, &[3]).unwrap_err().to_string();
    assert!(err.contains("[S, 3]"), "{err}");
    let u = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap();
    let err = Bijector::Simplex.forward(&u, &[3]).unwrap_err().to_string();
    assert!(err.contains("2 unconstrained coordinates") && err.contains("u has 3"), "{err}");
    let err = Bijector::Positive.forward(&u.flatten_all().unwrap(), &[6]).unwrap_err().to_string();
    assert!(err.contains("[S, 6]"), "{err}");
    let err = Bijector::CorrCholesky.forward(&u, &[3, 2]).unwrap_err().to_string();
    assert!(err.contains("3 × 2"), "{err}");
    let ints = Tensor::zeros((2, 3), DType::U32, &Device::Cpu).unwrap();
    assert!(Bijector::Positive.forward(&ints, &[3]).unwrap_err().to_string().contains("float"));
}

#[test]
fn display_names_the_constraint() {
    assert_eq!(Bijector::Real.to_string(), "real");
    assert_eq!(Bijector::Positive.to_string(), "positive");
    assert_eq!(Bijector::Interval(0.0, 1.0).to_string(), "interval (0, 1)");
    assert_eq!(Bijector::LowerBounded(-2.5).to_string(), "lower-bounded (-2.5, ∞)");
    assert_eq!(Bijector::Simplex.to_string(), "simplex");
    assert_eq!(Bijector::Ordered.to_string(), "ordered");
    assert_eq!(Bijector::CorrCholesky.to_string(), "Cholesky factor of a correlation matrix");
}
