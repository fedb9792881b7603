//! Helpers shared by the integration tests (`mod common;` from a test file).
//!
//! - [`synth`]: the deterministic synthetic SMPL-format model (spec in tools/synth_smpl.py),
//!   bit-identical to the Python generator that produced the smplx parity fixture;
//! - [`npz`]: reading named arrays from fixture `.npz` files.

#![allow(dead_code)]

pub mod npz;
pub mod synth;

use std::path::PathBuf;

/// Path of a file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}
