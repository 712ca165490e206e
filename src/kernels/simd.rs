//! Branch-free maths for the fused kernels: e^x, ln(1 + t) for t ∈ [0, 1] and ln t for positive t
//! in f64, and e^x for x ≤ 0 and ln(1 + t) in f32, as polynomials with no branch and no table, so
//! that loops over them vectorise (4 lanes of f64 in AVX2 registers, 8 in AVX-512 ones).
//!
//! ```text
//! e^x      = 2ⁿ e^r,            x = n ln 2 + r,  |r| ≤ ½ ln 2,   e^r = Σ_k r^k / k!
//! ln(1+t)  = 2 atanh(s),        s = t / (2 + t),                 atanh(s) = Σ_k s^(2k+1) / (2k + 1)
//! ln t     = k ln 2 + 2 atanh(s),  t = 2ᵏ z,  z ∈ [√½, √2),  s = (z − 1)/(z + 1)
//! ```
//!
//! Each uses only additions, multiplications, one division and integer operations on the bits, in
//! a fixed order (no fused multiply-adds: Rust does not contract), so a loop compiled for AVX2 gives
//! the bits of the same loop compiled for baseline x86-64. Accurate to a few ulps in f64 (tests
//! below, against libm); the f32 functions to about 2e-7 relative.

/// 1/k!, k = 0..13: the Taylor coefficients of e^r.
const INV_FACTORIAL: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// 1/(2k + 1), k = 0..16: the coefficients of atanh(s)/s in s².
const INV_ODD: [f64; 17] = [
    1.0,
    1.0 / 3.0,
    1.0 / 5.0,
    1.0 / 7.0,
    1.0 / 9.0,
    1.0 / 11.0,
    1.0 / 13.0,
    1.0 / 15.0,
    1.0 / 17.0,
    1.0 / 19.0,
    1.0 / 21.0,
    1.0 / 23.0,
    1.0 / 25.0,
    1.0 / 27.0,
    1.0 / 29.0,
    1.0 / 31.0,
    1.0 / 33.0,
];

/// ln 2 split for Cody–Waite reduction (fdlibm's): LN2_HI has 32 significant bits, so n · LN2_HI is
/// exact for |n| < 2²⁰.
const LN2_HI: f64 = 0.693_147_180_369_123_8;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// e^x in f64, branch-free so that loops over it vectorise: x = n ln 2 + r with |r| ≤ ½ ln 2
/// (Cody–Waite, fdlibm's split of ln 2), e^r by its Taylor series to r¹³ (truncation < 1e-17
/// relative), 2ⁿ from the exponent bits. Above ln(f64::MAX) ≈ 709.78 the result is +∞, as libm's;
/// inputs below −708 give e^(−708) (≈ 3e-308) instead of a subnormal.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²: adding and subtracting it rounds
    let x = x.clamp(-708.0, 710.0); // n = round(x / ln 2) ∈ [−1021, 1024]
    let shifted = x * std::f64::consts::LOG2_E + ROUND; // its low mantissa bits hold n
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACTORIAL[13];
    for &c in INV_FACTORIAL[..13].iter().rev() {
        p = p * r + c;
    }
    // 2ⁿ⁻¹: n + 1022 ∈ [1, 2046] into the exponent field (integer adds and shifts, no float-to-int
    // conversion, which AVX2 lacks for f64); (2p) 2ⁿ⁻¹ is exact where e^x is a normal number, and
    // +∞ where it overflows
    let half_scale = f64::from_bits(shifted.to_bits().wrapping_add(1022) << 52);
    (2.0 * p) * half_scale
}

/// ln(1 + t) for t ∈ [0, 1] in f64, branch-free: 2 atanh(s) with s = t / (2 + t) ≤ ⅓ as an odd
/// series to s³³ (truncation < 2e-17 relative), so small t keep full relative accuracy.
#[inline(always)]
pub(crate) fn log1p_unit(t: f64) -> f64 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut p = INV_ODD[16];
    for &c in INV_ODD[..16].iter().rev() {
        p = p * s2 + c;
    }
    2.0 * s * p
}

/// ln t for a positive normal f64 t (not 0, subnormal, ∞ or NaN: those give garbage), branch-free:
/// t = 2ᵏ z with z ∈ [√½, √2) from the bits (integer subtractions and logical shifts only, which
/// AVX2 has for 64-bit lanes), ln z = 2 atanh(s) with s = (z − 1)/(z + 1), |s| ≤ 0.172, as an odd
/// series to s²³ (truncation < 1e-19 relative), ln t = k ln 2 + ln z with ln 2 split in two.
#[inline(always)]
pub(crate) fn ln_positive(t: f64) -> f64 {
    const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd; // √½ rounded down
    const EXP_MASK: u64 = 0xfff << 52;
    const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let bits = t.to_bits();
    // (bits − bits(√½)) has k in its top 12 bits (two's complement); + bits(1) makes it k + 1023
    // ∈ [1, 2047] for every positive normal t, so a logical shift reads it
    let off = bits.wrapping_sub(SQRT_HALF_BITS);
    let biased = off.wrapping_add(ONE_BITS) >> 52;
    let z = f64::from_bits(bits.wrapping_sub(off & EXP_MASK));
    // k + 1023 as f64 without an integer-to-float conversion: 2⁵² + (k + 1023) − 2⁵² − 1023
    let k = (f64::from_bits(biased | TWO_52.to_bits()) - TWO_52) - 1023.0;
    let s = (z - 1.0) / (z + 1.0);
    let s2 = s * s;
    let mut p = INV_ODD[11];
    for &c in INV_ODD[..11].iter().rev() {
        p = p * s2 + c;
    }
    k * LN2_HI + (k * LN2_LO + 2.0 * s * p)
}

/// e^x for x ≤ 0 in f32, branch-free so that loops over it vectorise (Cephes' expf: x = n ln 2 + r,
/// |r| ≤ ½ ln 2, e^r by a polynomial, 2ⁿ from the exponent bits); relative error ≲ 2e-7.
/// Inputs below −87 give e^(−87) (≈ 1.6e-38) instead of a subnormal.
#[inline(always)]
pub(crate) fn exp_nonpositive_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits((((n as i32) + 127) << 23) as u32)
}

/// ln(1 + t) for t ∈ [0, 1] in f32, branch-free: [`log1p_unit`]'s series in f32, to s¹⁷
/// (truncation < 2e-9 relative), so small t keep full relative accuracy.
#[inline(always)]
pub(crate) fn log1p_unit_f32(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut p = 1.0 / 17.0f32;
    for c in [1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = p * s2 + c;
    }
    2.0 * s * p
}

/// [`exp`] and [`log1p_unit`] on the four f64 lanes of an AVX2 register, written with intrinsics:
/// the same operations in the same order (no fused multiply-adds), so the same bits lane by lane
/// as the scalar functions. LLVM does not vectorise the scalar functions across a loop's lanes by
/// itself (it emits scalar and 128-bit code for them).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{INV_FACTORIAL, INV_ODD, LN2_HI, LN2_LO};

    /// [`super::exp`], four lanes. NaN lanes give e^(−708) rather than NaN (max/min take the
    /// other operand).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn exp(x: __m256d) -> __m256d {
        const ROUND: f64 = 6_755_399_441_055_744.0;
        let x = _mm256_min_pd(_mm256_max_pd(x, _mm256_set1_pd(-708.0)), _mm256_set1_pd(710.0));
        let shifted = _mm256_add_pd(_mm256_mul_pd(x, _mm256_set1_pd(std::f64::consts::LOG2_E)), _mm256_set1_pd(ROUND));
        let n = _mm256_sub_pd(shifted, _mm256_set1_pd(ROUND));
        let r = _mm256_sub_pd(
            _mm256_sub_pd(x, _mm256_mul_pd(n, _mm256_set1_pd(LN2_HI))),
            _mm256_mul_pd(n, _mm256_set1_pd(LN2_LO)),
        );
        let mut p = _mm256_set1_pd(INV_FACTORIAL[13]);
        for &c in INV_FACTORIAL[..13].iter().rev() {
            p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(c));
        }
        let bits = _mm256_slli_epi64::<52>(_mm256_add_epi64(_mm256_castpd_si256(shifted), _mm256_set1_epi64x(1022)));
        _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), p), _mm256_castsi256_pd(bits))
    }

    /// [`super::log1p_unit`], four lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn log1p_unit(t: __m256d) -> __m256d {
        let s = _mm256_div_pd(t, _mm256_add_pd(_mm256_set1_pd(2.0), t));
        let s2 = _mm256_mul_pd(s, s);
        let mut p = _mm256_set1_pd(INV_ODD[16]);
        for &c in INV_ODD[..16].iter().rev() {
            p = _mm256_add_pd(_mm256_mul_pd(p, s2), _mm256_set1_pd(c));
        }
        _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), s), p)
    }
}

/// [`exp`] and [`log1p_unit`] on the eight f64 lanes of N AVX-512 registers at once: the AVX2
/// functions' operations, in the same order, so the same bits lane by lane. The N registers'
/// Horner steps are interleaved: each step waits on the previous one's latency (8 cycles for a
/// multiply and an add), and with N independent chains the core fills that wait. Built with the
/// `avx512` feature, and used only where the CPU reports AVX-512F (they take nothing beyond it).
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use super::{INV_FACTORIAL, INV_ODD, LN2_HI, LN2_LO};

    /// [`super::exp`], N × eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp<const N: usize>(x: [__m512d; N]) -> [__m512d; N] {
        const ROUND: f64 = 6_755_399_441_055_744.0;
        let (mut shifted, mut r) = ([_mm512_setzero_pd(); N], [_mm512_setzero_pd(); N]);
        for k in 0..N {
            let x = _mm512_min_pd(_mm512_max_pd(x[k], _mm512_set1_pd(-708.0)), _mm512_set1_pd(710.0));
            shifted[k] =
                _mm512_add_pd(_mm512_mul_pd(x, _mm512_set1_pd(std::f64::consts::LOG2_E)), _mm512_set1_pd(ROUND));
            let n = _mm512_sub_pd(shifted[k], _mm512_set1_pd(ROUND));
            r[k] = _mm512_sub_pd(
                _mm512_sub_pd(x, _mm512_mul_pd(n, _mm512_set1_pd(LN2_HI))),
                _mm512_mul_pd(n, _mm512_set1_pd(LN2_LO)),
            );
        }
        let mut p = [_mm512_set1_pd(INV_FACTORIAL[13]); N];
        for &c in INV_FACTORIAL[..13].iter().rev() {
            let c = _mm512_set1_pd(c);
            for k in 0..N {
                p[k] = _mm512_add_pd(_mm512_mul_pd(p[k], r[k]), c);
            }
        }
        for k in 0..N {
            let bits =
                _mm512_slli_epi64::<52>(_mm512_add_epi64(_mm512_castpd_si512(shifted[k]), _mm512_set1_epi64(1022)));
            p[k] = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(2.0), p[k]), _mm512_castsi512_pd(bits));
        }
        p
    }

    /// [`super::log1p_unit`], N × eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn log1p_unit<const N: usize>(t: [__m512d; N]) -> [__m512d; N] {
        let (mut s, mut s2) = ([_mm512_setzero_pd(); N], [_mm512_setzero_pd(); N]);
        for k in 0..N {
            s[k] = _mm512_div_pd(t[k], _mm512_add_pd(_mm512_set1_pd(2.0), t[k]));
            s2[k] = _mm512_mul_pd(s[k], s[k]);
        }
        let mut p = [_mm512_set1_pd(INV_ODD[16]); N];
        for &c in INV_ODD[..16].iter().rev() {
            let c = _mm512_set1_pd(c);
            for k in 0..N {
                p[k] = _mm512_add_pd(_mm512_mul_pd(p[k], s2[k]), c);
            }
        }
        for k in 0..N {
            p[k] = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(2.0), s[k]), p[k]);
        }
        p
    }
}

/// Four f64 lanes, element-wise: written as plain arrays so that the same code is portable and,
/// compiled with AVX2 enabled, becomes single 256-bit instructions (LLVM's SLP vectoriser).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct F4(pub(crate) [f64; 4]);

impl F4 {
    /// Every lane `v`.
    #[inline(always)]
    pub(crate) fn splat(v: f64) -> F4 {
        F4([v; 4])
    }

    /// The first four values of `a`.
    #[inline(always)]
    pub(crate) fn load(a: &[f64]) -> F4 {
        F4([a[0], a[1], a[2], a[3]])
    }

    /// `f` lane by lane on two vectors.
    #[inline(always)]
    pub(crate) fn zip(self, o: F4, f: impl Fn(f64, f64) -> f64) -> F4 {
        F4([f(self.0[0], o.0[0]), f(self.0[1], o.0[1]), f(self.0[2], o.0[2]), f(self.0[3], o.0[3])])
    }

    /// The sum of the lanes, (0 + 1) + (2 + 3).
    #[inline(always)]
    pub(crate) fn total(self) -> f64 {
        (self.0[0] + self.0[1]) + (self.0[2] + self.0[3])
    }
}

impl std::ops::Add for F4 {
    type Output = F4;
    #[inline(always)]
    fn add(self, o: F4) -> F4 {
        self.zip(o, |a, b| a + b)
    }
}

impl std::ops::Sub for F4 {
    type Output = F4;
    #[inline(always)]
    fn sub(self, o: F4) -> F4 {
        self.zip(o, |a, b| a - b)
    }
}

impl std::ops::Mul for F4 {
    type Output = F4;
    #[inline(always)]
    fn mul(self, o: F4) -> F4 {
        self.zip(o, |a, b| a * b)
    }
}

impl std::ops::AddAssign for F4 {
    #[inline(always)]
    fn add_assign(&mut self, o: F4) {
        *self = *self + o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomials against the standard library's e^x, ln(1 + t) and ln t.
    #[test]
    fn kernels_match_libm() {
        let (mut worst_exp, mut worst_log1p) = (0.0f64, 0.0f64);
        for i in 0..=120_000 {
            let x = -60.0 + i as f64 * 1e-3;
            let e = exp(-x.abs());
            worst_exp = worst_exp.max((e / (-x.abs()).exp() - 1.0).abs());
            worst_log1p = worst_log1p.max((log1p_unit(e) / e.ln_1p() - 1.0).abs());
        }
        assert!(worst_exp < 1e-15, "exp: worst relative error {worst_exp}");
        assert!(worst_log1p < 1e-15, "ln(1 + t): worst relative error {worst_log1p}");
        assert!((exp(-700.0) / (-700f64).exp() - 1.0).abs() < 1e-14);
        assert_eq!(exp(0.0), 1.0);
        // ln t: absolute error against |ln t| (relative where ln t is far from 0) over 1e-300..1e300,
        // densely on [0.5, 4] (the logsumexp's sums lie in [1, K]), and near 1 relative
        let mut worst_ln = 0.0f64;
        let mut check = |t: f64| {
            let (a, b) = (ln_positive(t), t.ln());
            worst_ln = worst_ln.max((a - b).abs() / b.abs().max(1.0));
        };
        for i in 0..=200_000 {
            check(0.5 + 3.5 * i as f64 / 200_000.0);
            check(10f64.powf(-300.0 + 600.0 * i as f64 / 200_000.0));
        }
        check(f64::MIN_POSITIVE);
        check(f64::MAX);
        assert!(worst_ln < 4.5e-16, "ln: worst error {worst_ln}"); // two ulps
        for t in [1.0 + 1e-12, 1.0 - 1e-12, 1.0 + f64::EPSILON, 1.3, 0.75] {
            assert!((ln_positive(t) / t.ln() - 1.0).abs() < 1e-15, "ln({t}) = {} vs {}", ln_positive(t), t.ln());
        }
        assert_eq!(ln_positive(1.0), 0.0);
        assert_eq!(ln_positive(2.0), std::f64::consts::LN_2);
    }

    #[test]
    fn four_lanes() {
        let a = F4([1.0, -2.0, 3.5, 7.0]);
        let b = F4::load(&[0.5, 4.0, -1.0, 2.0, 9.0]);
        assert_eq!((a + b).0[..3], [1.5, 2.0, 2.5]);
        assert_eq!((a - b).0[..3], [0.5, -6.0, 4.5]);
        assert_eq!((a * b).0[..3], [0.5, -8.0, -3.5]);
        assert_eq!(b.total(), (0.5 + 4.0) + (-1.0 + 2.0));
        assert_eq!(F4::splat(2.0) * F4::splat(3.0), F4([6.0; 4]));
    }
}
