//! The deterministic synthetic SMPL-format model, bit-identical to `tools/synth_smpl.py`.
//!
//! The specification (hash streams, formulas, the rest-skeleton table) is the docstring at the
//! top of tools/synth_smpl.py; this file implements it exactly (same f64 operations in the same
//! order, one final rounding to f32). Change both together and regenerate the fixture with
//! `tools/make_parity_fixtures.py`.
//!
//! Also compiled into benches/body_forward.rs (via `#[path]`), hence the allow.

#![allow(dead_code)]

use rigfit::body::{BodyArrays, NUM_JOINTS, NUM_POSE_FEATURES, SMPL_LANDMARKS, SMPL_PARENTS};

/// Version of the specification implemented here (tools/synth_smpl.py `SPEC_VERSION`).
pub const SPEC_VERSION: u32 = 1;

pub const NUM_VERTS: usize = 6890;
pub const NUM_BETAS: usize = 10;
pub const NUM_FACES: usize = 13776;

/// Approximate SMPL rest skeleton (metres, Y up, centred), `[24][3]`.
pub const JOINT_REST: [[f64; 3]; NUM_JOINTS] = [
    [0.00, 0.18, 0.03],
    [0.06, 0.09, 0.02],
    [-0.06, 0.09, 0.02],
    [0.00, 0.29, 0.00],
    [0.10, -0.29, 0.02],
    [-0.10, -0.29, 0.02],
    [0.00, 0.42, 0.01],
    [0.08, -0.69, -0.02],
    [-0.08, -0.69, -0.02],
    [0.00, 0.47, 0.03],
    [0.12, -0.75, 0.10],
    [-0.12, -0.75, 0.10],
    [0.00, 0.69, -0.01],
    [0.08, 0.60, 0.00],
    [-0.08, 0.60, 0.00],
    [0.00, 0.76, 0.05],
    [0.20, 0.63, -0.02],
    [-0.20, 0.63, -0.02],
    [0.45, 0.61, -0.04],
    [-0.45, 0.61, -0.04],
    [0.71, 0.61, -0.01],
    [-0.71, 0.61, -0.01],
    [0.80, 0.60, -0.02],
    [-0.80, 0.60, -0.02],
];

pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One hash stream of a seed: `bits(i) = splitmix64(key + i)`, `key = splitmix64(seed ^ splitmix64(stream))`.
#[derive(Clone, Copy)]
pub struct Stream {
    key: u64,
}

impl Stream {
    pub fn new(seed: u64, stream: u64) -> Self {
        Self { key: splitmix64(seed ^ splitmix64(stream)) }
    }
    pub fn bits(&self, i: u64) -> u64 {
        splitmix64(self.key.wrapping_add(i))
    }
    /// `(bits >> 11) * 2^-53`, an exact f64 in [0, 1).
    pub fn unit(&self, i: u64) -> f64 {
        (self.bits(i) >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    /// `2 * unit - 1`, an exact f64 in [-1, 1).
    pub fn sym(&self, i: u64) -> f64 {
        2.0 * self.unit(i) - 1.0
    }
}

/// Builds the synthetic model of `seed` (6890 vertices, 10 betas, real SMPL tree and landmarks).
pub fn synthetic_smpl(seed: u64) -> BodyArrays {
    let (v, s, p, j) = (NUM_VERTS, NUM_BETAS, NUM_POSE_FEATURES, NUM_JOINTS);
    let st = |stream: u64| Stream::new(seed, stream);

    let h1 = st(1);
    let mut v_template = Vec::with_capacity(v * 3);
    for vi in 0..v {
        for (k, &rest) in JOINT_REST[vi % j].iter().enumerate() {
            let x = rest + 0.08 * h1.sym((3 * vi + k) as u64);
            v_template.push(x as f32);
        }
    }

    let h2 = st(2);
    let shapedirs: Vec<f32> = (0..v * 3 * s).map(|i| (0.03 * h2.sym(i as u64)) as f32).collect();

    // Pickle layout [V, 3, P] index (3v + k) * P + p  ->  smplx layout [P, V*3] index p * 3V + 3v + k.
    let h3 = st(3);
    let mut posedirs = vec![0f32; p * v * 3];
    for c in 0..v * 3 {
        for pi in 0..p {
            posedirs[pi * v * 3 + c] = (0.01 * h3.sym((c * p + pi) as u64)) as f32;
        }
    }

    let (h4, h5, h6) = (st(4), st(5), st(6));
    let mut j_regressor = vec![0f32; j * v];
    for jj in 0..j {
        let n = 8 + (h4.bits(jj as u64) % 9) as usize;
        let a = (h5.bits(jj as u64) % 287) as usize;
        let raw: Vec<f64> = (0..n).map(|i| 0.5 + h6.unit((16 * jj + i) as u64)).collect();
        let mut tot = 0.0f64;
        for r in &raw {
            tot += r;
        }
        for (i, r) in raw.iter().enumerate() {
            let q = (a + 37 * i) % 287;
            j_regressor[jj * v + 24 * q + jj] = (r / tot) as f32;
        }
    }

    let chains: Vec<Vec<usize>> = (0..j)
        .map(|jj| {
            let mut c = vec![jj];
            while SMPL_PARENTS[*c.last().unwrap()] >= 0 {
                c.push(SMPL_PARENTS[*c.last().unwrap()] as usize);
            }
            c
        })
        .collect();
    let (h7, h8) = (st(7), st(8));
    let mut weights = vec![0f32; v * j];
    for vi in 0..v {
        let chain = &chains[vi % j];
        let m = (1 + (h7.bits(vi as u64) % 4) as usize).min(chain.len());
        let raw: Vec<f64> = (0..m)
            .map(|i| {
                let u = h8.unit((4 * vi + i) as u64);
                if i == 0 {
                    1.0 + u
                } else {
                    0.05 + u
                }
            })
            .collect();
        let mut tot = 0.0f64;
        for r in &raw {
            tot += r;
        }
        for (i, r) in raw.iter().enumerate() {
            weights[vi * j + chain[i]] = (r / tot) as f32;
        }
    }

    let h9 = st(9);
    let faces: Vec<[u32; 3]> = (0..NUM_FACES as u64)
        .map(|t| {
            let a = h9.bits(3 * t) % v as u64;
            let d1 = h9.bits(3 * t + 1) % 100;
            let d2 = h9.bits(3 * t + 2) % 100;
            let vv = v as u64;
            [a as u32, ((a + 1 + d1) % vv) as u32, ((a + 2 + d1 + d2) % vv) as u32]
        })
        .collect();

    BodyArrays {
        name: format!("synthetic_smpl_seed{seed}"),
        v_template,
        shapedirs,
        num_betas: s,
        posedirs,
        j_regressor,
        weights,
        parents: SMPL_PARENTS,
        faces,
        landmarks: SMPL_LANDMARKS,
    }
}

/// Sequential f64 sum of all posedirs values in the pickle order `[V, 3, P]` (the fixture's
/// `check_posedirs_sum`).
pub fn posedirs_sum_pickle_order(a: &BodyArrays) -> f64 {
    let v3 = a.v_template.len();
    let mut sum = 0.0f64;
    for c in 0..v3 {
        for pi in 0..NUM_POSE_FEATURES {
            sum += a.posedirs[pi * v3 + c] as f64;
        }
    }
    sum
}
