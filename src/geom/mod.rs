//! Geometry: rotations, cameras, Procrustes alignment and the accuracy metrics.
//!
//! - [`rot`]: rotation representations on plain arrays (generic over `f32`/`f64` through
//!   [`Real`]) and their differentiable candle versions. ScoreHMR's 6D layout is column 0 then
//!   column 1 of the matrix (scorehmr.md 1.3).
//! - [`camera`]: the pinhole camera (OpenCV axes: x right, y down, z forward), ScoreHMR's
//!   crop <-> full-image camera conversion, and a closed-form translation solve.
//! - [`align`]: similarity (and rigid) Procrustes alignment in f64.
//! - [`metrics`]: MPJPE, PA-MPJPE, PVE and acceleration error (data_eval.md 4.1).
//!
//! Conventions shared by all submodules:
//! - A 3x3 matrix is a row-major `[T; 9]`: `m[3 * i + j]` is row `i`, column `j`. Batches of
//!   matrices are flat slices `[N, 9]` (equivalently `[N, 3, 3]` row-major), the layout of
//!   `rotmats` in [`crate::body`] and of candle's `[..., 3, 3]` tensors.
//! - A rotation matrix acts on column vectors: `p' = R p`.
//! - Quaternions are `[w, x, y, z]` (scalar first, Hamilton product), unit norm.
//! - Axis-angle vectors are `axis * angle` (radians).

pub mod align;
pub mod camera;
pub mod metrics;
pub mod rot;

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// A floating-point scalar (`f32` or `f64`) for the generic array functions of this module.
pub trait Real:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Machine epsilon of the type.
    const EPSILON: Self;
    /// Pi.
    const PI: Self;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Four-quadrant arc tangent of `self / x`.
    fn atan2(self, x: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty, $pi:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = <$t>::EPSILON;
            const PI: Self = $pi;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline]
            fn atan2(self, x: Self) -> Self {
                <$t>::atan2(self, x)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}

impl_real!(f32, std::f32::consts::PI);
impl_real!(f64, std::f64::consts::PI);

/// Checks that a flat buffer holds a whole number of `item`-sized records and returns how many.
/// `what` names the buffer and its layout for the error message (e.g. `"x6d [N, 6]"`).
pub(crate) fn count_items(len: usize, item: usize, what: &str) -> crate::Result<usize> {
    if item == 0 || len % item != 0 {
        return Err(crate::Error::Input(format!(
            "{what}: length {len} is not a multiple of {item}"
        )));
    }
    Ok(len / item)
}
