//! Tests of the fused GLM op: its polynomials and terms against libm, and each wide path (AVX2,
//! AVX-512) against the portable loop, bit for bit.

use super::*;

fn bernoulli_libm(eta: f64, y: f64) -> (f64, f64) {
    let value = y * eta - (eta.max(0.0) + (-eta.abs()).exp().ln_1p());
    (value, y - 1.0 / (1.0 + (-eta).exp()))
}

/// The polynomial e^x and ln(1 + t) against the standard library's, and the Bernoulli terms
/// they make against the same terms from libm, over η from −60 to 60 and at the extremes.
#[test]
fn fast_kernels_match_libm() {
    let mut worst = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..=120_000 {
        let x = -60.0 + i as f64 * 1e-3;
        let e = exp(-x.abs());
        worst.0 = worst.0.max((e / (-x.abs()).exp() - 1.0).abs());
        worst.1 = worst.1.max((log1p_unit(e) / e.ln_1p() - 1.0).abs());
        for y in [0.0, 1.0] {
            let (v, r) = Bernoulli.term(x, y);
            let (vw, rw) = bernoulli_libm(x, y);
            worst.2 = worst.2.max((v - vw).abs() / vw.abs().max(x.abs()).max(1e-300));
            worst.3 = worst.3.max((r - rw).abs());
        }
    }
    assert!(worst.0 < 1e-15, "exp: worst relative error {}", worst.0);
    assert!(worst.1 < 1e-15, "ln(1 + t): worst relative error {}", worst.1);
    assert!(worst.2 < 1e-15, "value: worst relative error {}", worst.2);
    assert!(worst.3 < 1e-15, "residual: worst absolute error {}", worst.3);
    // tails keep their relative accuracy: softplus(−30) = ln(1 + e^(−30)), e^(−700)
    let sp = -Bernoulli.term(-30.0, 0.0).0;
    assert!((sp / (-30f64).exp().ln_1p() - 1.0).abs() < 1e-15, "softplus(−30) = {sp}");
    assert!((exp(-700.0) / (-700f64).exp() - 1.0).abs() < 1e-14);
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(Bernoulli.term(800.0, 1.0), (0.0, 0.0));
    assert_eq!(Bernoulli.term(-800.0, 1.0), (-800.0, 1.0));
}

/// e^x for positive x, up to and past f64's overflow at ln(f64::MAX) ≈ 709.78: relative error
/// of a few ulps where libm's is finite (the Taylor truncation and the reduction's rounding,
/// which grows with |n| ≤ 1024 by about |n| · 2⁻⁵³ · |x|-ish: 1e-14 bounds it), +∞ beyond.
#[test]
fn exp_is_accurate_up_to_overflow() {
    let mut worst = 0.0f64;
    for i in 0..=70_978 {
        let x = i as f64 * 1e-2;
        worst = worst.max((exp(x) / x.exp() - 1.0).abs());
    }
    assert!(worst < 1e-14, "exp on [0, 709.78]: worst relative error {worst}");
    let top = f64::MAX.ln(); // 709.782712893384
    assert!(exp(top - 1e-9).is_finite() && (exp(top - 1e-9) / (top - 1e-9).exp() - 1.0).abs() < 1e-14);
    for x in [top + 1e-9, 709.9, 710.0, 800.0, 1e300, f64::INFINITY] {
        assert_eq!(exp(x), f64::INFINITY, "e^{x}");
    }
    // the Poisson term at large η is then −∞ with a −∞ residual, not a wrapped finite number
    assert_eq!(Poisson.term(800.0, 3.0), (f64::NEG_INFINITY, f64::NEG_INFINITY));
}

/// Each wide path this CPU has (AVX2, AVX-512) gives the portable one's bits, over several
/// blocks and a partial one, for every GLM, with and without an intercept; the blocked sums
/// equal unblocked ones made from libm's terms: Σ ℓ, Xᵀ r and Σ r.
#[test]
fn wide_path_matches_the_portable_one() {
    // d = 6: the wide paths' Xᵀ r takes one group of four rows and two single rows
    let (n, d) = (2 * BLOCK + 91, 6);
    let x_t: Vec<f64> = (0..n * d).map(|i| ((i as f64) * 0.37).sin() * 1.5).collect();
    let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    type Libm = fn(f64, f64) -> (f64, f64);
    let glms: [(&str, Vec<f64>, Libm); 3] = [
        ("bernoulli", (0..n).map(|i| (i % 2) as f64).collect(), bernoulli_libm),
        ("normal", (0..n).map(|i| ((i as f64) * 0.91).cos() * 4.0).collect(), |e, y| {
            (-0.5 * (y - e).powi(2) / 2.25, (y - e) / 2.25)
        }),
        ("poisson", (0..n).map(|i| (i % 5) as f64).collect(), |e, y| (y * e - e.exp(), y - e.exp())),
    ];
    /// `all` on one instruction set, for each GLM of the test, on f64 data or on the same data
    /// rounded to f32.
    fn run<const ISA: u8>(name: &str, f32_data: bool, x_t: &[f64], y: &[f64], z: &[f64]) -> (Vec<f64>, Vec<f64>) {
        fn on<T: WithDType, const ISA: u8>(name: &str, x_t: &[T], y: &[T], z: &[T]) -> (Vec<f64>, Vec<f64>) {
            let (mut v, mut g) = (vec![0.0; 2], vec![0.0; z.len()]);
            match name {
                "bernoulli" => all::<_, _, ISA>(Bernoulli, x_t, y, z, &mut v, &mut g),
                "normal" => all::<_, _, ISA>(Normal { inv_var: 1.0 / 2.25 }, x_t, y, z, &mut v, &mut g),
                _ => all::<_, _, ISA>(Poisson, x_t, y, z, &mut v, &mut g),
            }
            (v, g)
        }
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        match f32_data {
            false => on::<f64, ISA>(name, x_t, y, z),
            true => on::<f32, ISA>(name, &f32s(x_t), &f32s(y), &f32s(z)),
        }
    }
    type Path = fn(&str, bool, &[f64], &[f64], &[f64]) -> (Vec<f64>, Vec<f64>);
    let mut paths: Vec<(&str, Path)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        paths.push(("AVX2", run::<AVX2>));
    }
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    if std::arch::is_x86_feature_detected!("avx512f") {
        paths.push(("AVX-512", run::<AVX512>));
    }
    for (name, y, libm) in glms {
        for k in [d + 1, d] {
            let z: Vec<f64> = (0..2 * k).map(|i| ((i as f64) * 1.3).cos() * 0.4).collect();
            for f32_data in [false, true] {
                let portable = run::<PORTABLE>(name, f32_data, &x_t, &y, &z);
                for (isa, path) in &paths {
                    let wide = path(name, f32_data, &x_t, &y, &z);
                    assert_eq!(bits(&portable.0), bits(&wide.0), "{isa}: {name}, k = {k}, f32 {f32_data}");
                    assert_eq!(bits(&portable.1), bits(&wide.1), "{isa}: {name}, k = {k}, f32 {f32_data}");
                }
            }
            let (v1, g1) = run::<PORTABLE>(name, false, &x_t, &y, &z);
            for (s, zs) in z.chunks_exact(k).enumerate() {
                let (mut value, mut grad, mut scale) = (0.0, vec![0.0; k], 0.0f64);
                for i in 0..n {
                    let b = if k > d { zs[d] } else { 0.0 };
                    let eta = b + (0..d).map(|j| zs[j] * x_t[j * n + i]).sum::<f64>();
                    let (v, r) = libm(eta, y[i]);
                    value += v;
                    scale += v.abs() + r.abs() * 1.5;
                    for j in 0..d {
                        grad[j] += x_t[j * n + i] * r;
                    }
                    if k > d {
                        grad[d] += r;
                    }
                }
                assert!((v1[s] - value).abs() <= 1e-13 * scale, "{name} draw {s}: {} vs {value}", v1[s]);
                for j in 0..k {
                    let got = g1[s * k + j];
                    assert!(
                        (got - grad[j]).abs() <= 1e-13 * scale,
                        "{name} draw {s}, coordinate {j}: {got} vs {}",
                        grad[j]
                    );
                }
            }
        }
    }
}
