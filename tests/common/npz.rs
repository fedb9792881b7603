//! Reading named arrays from a fixture `.npz` (np.savez or np.savez_compressed) via candle.

use std::path::Path;

use candle_core::{DType, Tensor};

fn read_tensor(path: &Path, name: &str) -> Tensor {
    let mut v = Tensor::read_npz_by_name(path, &[name])
        .unwrap_or_else(|e| panic!("{}: cannot read array `{name}`: {e}", path.display()));
    v.remove(0)
}

/// Array `name` of the npz at `path` as f64 values (row-major) and its shape.
pub fn read_f64(path: &Path, name: &str) -> (Vec<f64>, Vec<usize>) {
    let t = read_tensor(path, name);
    let shape = t.dims().to_vec();
    let data = t
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .unwrap_or_else(|e| panic!("{}: array `{name}` to f64: {e}", path.display()));
    (data, shape)
}

/// Array `name` as f32 values (f64 arrays are rounded) and its shape.
pub fn read_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = read_tensor(path, name);
    let shape = t.dims().to_vec();
    let data = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap_or_else(|e| panic!("{}: array `{name}` to f32: {e}", path.display()));
    (data, shape)
}

/// Integer array `name` as i64 values and its shape.
pub fn read_i64(path: &Path, name: &str) -> (Vec<i64>, Vec<usize>) {
    let t = read_tensor(path, name);
    let shape = t.dims().to_vec();
    let data = t
        .to_dtype(DType::I64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<i64>())
        .unwrap_or_else(|e| panic!("{}: array `{name}` to i64: {e}", path.display()));
    (data, shape)
}
