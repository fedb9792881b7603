//! Reading and writing body models as `.npz` in the smplx/SMPL naming.
//!
//! Keys (see README, "Your own SMPL file"):
//! - `v_template` `[V, 3]`, `shapedirs` `[V, 3, S]`, `weights` `[V, 24]`, `f` `[F, 3]`;
//! - `posedirs` `[V, 3, 207]` (SMPL pickle layout) or `[207, V*3]` (smplx layout); a model
//!   without pose correctives may omit it if it carries the marker `posedirs_zero` (rigfit's
//!   own default body does, which keeps the file small);
//! - `J_regressor` `[24, V]` dense, or compressed rows `J_regressor_data`,
//!   `J_regressor_indices`, `J_regressor_indptr` (`indptr` of length 25);
//! - `kintree_table` `[2, 24]` (root parent stored as -1 or 4294967295) or `parents` `[24]`;
//! - `landmarks` `[11]` vertex ids for the BODY_25 extras (optional for the 6890-vertex SMPL
//!   mesh, which uses smplx's ids).

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;

use super::{BodyArrays, NUM_JOINTS, NUM_LANDMARKS, NUM_POSE_FEATURES, SMPL_LANDMARKS};
use crate::error::{Error, Result};
use crate::io::npz::{write_npz, Array, Npz, WriteArray};

pub(crate) fn read_npz(path: &Path) -> Result<BodyArrays> {
    let mut npz = Npz::open(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "body".into());
    read(&mut npz, name)
}

pub(crate) fn read_npz_bytes(bytes: &[u8], origin: &str) -> Result<BodyArrays> {
    let mut npz = Npz::from_bytes(bytes, origin)?;
    read(&mut npz, "body".into())
}

fn shape_err(origin: &str, key: &str, a: &Array, expected: String) -> Error {
    Error::BadShape {
        path: origin.to_string(),
        key: key.to_string(),
        found: a.shape.clone(),
        expected,
    }
}

fn index_values(origin: &str, key: &str, a: &Array, bound: usize) -> Result<Vec<u32>> {
    a.data
        .iter()
        .map(|&x| {
            if x >= 0.0 && x.fract() == 0.0 && (x as usize) < bound {
                Ok(x as u32)
            } else {
                Err(Error::BadValue {
                    path: origin.to_string(),
                    key: key.to_string(),
                    what: format!("index {x} is not an integer in [0, {bound})"),
                })
            }
        })
        .collect()
}

/// Reads a model; its name is the `name_code` array (bytes) when present, else `fallback_name`.
fn read<R: Read + Seek>(npz: &mut Npz<R>, fallback_name: String) -> Result<BodyArrays> {
    let origin = npz.origin().to_string();
    let name = npz
        .get("name_code")?
        .map(|a| a.data.iter().map(|&c| c as u8 as char).collect::<String>())
        .unwrap_or(fallback_name);
    let o = origin.as_str();

    let vt = npz.require("v_template", "[V, 3] rest vertices")?;
    if vt.shape.len() != 2 || vt.shape[1] != 3 || vt.shape[0] == 0 {
        return Err(shape_err(o, "v_template", &vt, "[V, 3]".into()));
    }
    let v = vt.shape[0];

    let sd = npz.require("shapedirs", "[V, 3, S] shape blend shapes")?;
    if sd.shape.len() != 3 || sd.shape[0] != v || sd.shape[1] != 3 {
        return Err(shape_err(o, "shapedirs", &sd, format!("[{v}, 3, S]")));
    }
    let s = sd.shape[2];

    let posedirs = match npz.get("posedirs")? {
        Some(pd) => {
            if pd.shape == [v, 3, NUM_POSE_FEATURES] {
                // SMPL layout [V,3,207] -> smplx's reshape(-1, 207).T = [207, V*3].
                let mut out = vec![0f32; NUM_POSE_FEATURES * v * 3];
                for r in 0..v * 3 {
                    for p in 0..NUM_POSE_FEATURES {
                        out[p * v * 3 + r] = pd.data[r * NUM_POSE_FEATURES + p] as f32;
                    }
                }
                out
            } else if pd.shape == [NUM_POSE_FEATURES, v * 3] {
                pd.to_f32()
            } else {
                return Err(shape_err(
                    o,
                    "posedirs",
                    &pd,
                    format!("[{v}, 3, 207] or [207, {}]", v * 3),
                ));
            }
        }
        None if npz.contains("posedirs_zero") => vec![0f32; NUM_POSE_FEATURES * v * 3],
        None => {
            return Err(Error::MissingKey {
                path: origin.clone(),
                key: "posedirs".into(),
                expected: format!("[{v}, 3, 207] pose blend shapes"),
            })
        }
    };

    let j_regressor = match npz.get("J_regressor")? {
        Some(jr) => {
            if jr.shape != [NUM_JOINTS, v] {
                return Err(shape_err(o, "J_regressor", &jr, format!("[24, {v}]")));
            }
            jr.to_f32()
        }
        None => {
            let expected = "[24, V] dense, or J_regressor_data/_indices/_indptr (CSR)";
            let data = npz.get("J_regressor_data")?;
            let (data, idx, ptr) = match data {
                Some(d) => (
                    d,
                    npz.require("J_regressor_indices", "CSR column (vertex) indices")?,
                    npz.require("J_regressor_indptr", "CSR row pointers [25]")?,
                ),
                None => {
                    return Err(Error::MissingKey {
                        path: origin.clone(),
                        key: "J_regressor".into(),
                        expected: expected.into(),
                    })
                }
            };
            if ptr.len() != NUM_JOINTS + 1 || idx.len() != data.len() {
                return Err(shape_err(o, "J_regressor_indptr", &ptr, "[25] with indices and data of equal length".into()));
            }
            let cols = index_values(o, "J_regressor_indices", &idx, v)?;
            let ptr = index_values(o, "J_regressor_indptr", &ptr, data.len() + 1)?;
            let mut dense = vec![0f32; NUM_JOINTS * v];
            for j in 0..NUM_JOINTS {
                for k in ptr[j] as usize..ptr[j + 1] as usize {
                    dense[j * v + cols[k] as usize] += data.data[k] as f32;
                }
            }
            dense
        }
    };

    let w = npz.require("weights", "[V, 24] skinning weights")?;
    if w.shape != [v, NUM_JOINTS] {
        return Err(shape_err(o, "weights", &w, format!("[{v}, 24]")));
    }

    let parents_vals: Vec<f64> = match npz.get("kintree_table")? {
        Some(kt) => {
            if kt.shape != [2, NUM_JOINTS] {
                return Err(shape_err(o, "kintree_table", &kt, "[2, 24]".into()));
            }
            kt.data[..NUM_JOINTS].to_vec()
        }
        None => {
            let p = npz.require("parents", "[24] parent indices (or kintree_table [2, 24])")?;
            if p.shape != [NUM_JOINTS] {
                return Err(shape_err(o, "parents", &p, "[24]".into()));
            }
            p.data
        }
    };
    let mut parents = [0i32; NUM_JOINTS];
    for (i, &p) in parents_vals.iter().enumerate() {
        // smplx: parents = kintree_table[0]; parents[0] = -1 (root stored as uint32 -1).
        parents[i] = if i == 0 || p == u32::MAX as f64 { -1 } else { p as i32 };
    }

    let f = npz.require("f", "[F, 3] triangle vertex indices")?;
    if f.shape.len() != 2 || f.shape[1] != 3 {
        return Err(shape_err(o, "f", &f, "[F, 3]".into()));
    }
    let fi = index_values(o, "f", &f, v)?;
    let faces = fi.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();

    let landmarks = match npz.get("landmarks")? {
        Some(l) => {
            if l.shape != [NUM_LANDMARKS] {
                return Err(shape_err(o, "landmarks", &l, "[11]".into()));
            }
            let ids = index_values(o, "landmarks", &l, v)?;
            let mut out = [0u32; NUM_LANDMARKS];
            out.copy_from_slice(&ids);
            out
        }
        None if v == 6890 => SMPL_LANDMARKS,
        None => {
            return Err(Error::MissingKey {
                path: origin.clone(),
                key: "landmarks".into(),
                expected: "[11] landmark vertex ids (nose, eyes, ears, toes, heels); only the \
                           6890-vertex SMPL mesh has defaults"
                    .into(),
            })
        }
    };

    let arrays = BodyArrays {
        name,
        v_template: vt.to_f32(),
        shapedirs: sd.to_f32(),
        num_betas: s,
        posedirs,
        j_regressor,
        weights: w.to_f32(),
        parents,
        faces,
        landmarks,
    };
    arrays.validate(o)?;
    Ok(arrays)
}

impl BodyArrays {
    /// Writes the model as a deflate-compressed `.npz` that [`super::BodyModel::load`] and
    /// NumPy read back. All-zero `posedirs` are omitted (with the `posedirs_zero` marker).
    pub fn save_npz(&self, path: &Path) -> Result<()> {
        let v = self.num_verts();
        let mut m: BTreeMap<String, WriteArray> = BTreeMap::new();
        m.insert("v_template".into(), WriteArray::F32(&self.v_template, vec![v, 3]));
        m.insert(
            "shapedirs".into(),
            WriteArray::F32(&self.shapedirs, vec![v, 3, self.num_betas]),
        );
        if self.posedirs.iter().any(|&x| x != 0.0) {
            m.insert(
                "posedirs".into(),
                WriteArray::F32(&self.posedirs, vec![NUM_POSE_FEATURES, v * 3]),
            );
        } else {
            m.insert("posedirs_zero".into(), WriteArray::I64(vec![1], vec![1]));
        }
        m.insert("J_regressor".into(), WriteArray::F32(&self.j_regressor, vec![NUM_JOINTS, v]));
        m.insert("weights".into(), WriteArray::F32(&self.weights, vec![v, NUM_JOINTS]));
        let mut kt: Vec<i64> = self.parents.iter().map(|&p| p as i64).collect();
        kt.extend(0..NUM_JOINTS as i64);
        m.insert("kintree_table".into(), WriteArray::I64(kt, vec![2, NUM_JOINTS]));
        let f: Vec<i64> = self.faces.iter().flat_map(|t| t.iter().map(|&i| i as i64)).collect();
        m.insert("f".into(), WriteArray::I64(f, vec![self.faces.len(), 3]));
        m.insert(
            "landmarks".into(),
            WriteArray::I64(self.landmarks.iter().map(|&i| i as i64).collect(), vec![NUM_LANDMARKS]),
        );
        let name: Vec<i64> = self.name.bytes().map(|b| b as i64).collect();
        let n = name.len();
        m.insert("name_code".into(), WriteArray::I64(name, vec![n]));
        write_npz(path, &m)
    }
}
