//! Body-model forward benchmark: full mesh at batch 1, 64, 512, the joints-only path, and the
//! differentiable candle path (forward + backward), on the embedded default body and on a
//! synthetic SMPL-size model (6890 vertices, dense pose correctives, like the real SMPL).
//!
//! Run (same profile as the tests, so dependencies build once):
//!     cargo bench --profile dev --bench body_forward
//! Compare with smplx on the same machine: tools/bench_smplx.py (see tools/README.md).
//! Prints one JSON object per line; times are the minimum over repeats (the machine is shared).

#[path = "../tests/common/synth.rs"]
mod synth;

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use rigfit::body::{diff::DiffBody, BodyModel, BodyOutput};
use rigfit::geom::rot::axis_angle_to_matrix;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn inputs(b: usize, s: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let betas = (0..b * s).map(|_| rng.next()).collect();
    let mut rot = Vec::with_capacity(b * 24 * 9);
    for _ in 0..b * 24 {
        rot.extend_from_slice(&axis_angle_to_matrix(&[rng.next() * 0.5, rng.next() * 0.5, rng.next() * 0.5]));
    }
    let transl = (0..b * 3).map(|_| rng.next()).collect();
    (betas, rot, transl)
}

fn time_min(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn report(model: &str, path: &str, b: usize, ms: f64) {
    println!(
        "{{\"impl\":\"rigfit\",\"model\":\"{model}\",\"path\":\"{path}\",\"batch\":{b},\"ms_per_call\":{ms:.4},\"ms_per_sample\":{:.5}}}",
        ms / b as f64
    );
}

fn main() -> rigfit::Result<()> {
    let mut models = vec![("synthetic_smpl", BodyModel::new(synth::synthetic_smpl(0))?)];
    match BodyModel::default_body() {
        Ok(m) => models.push(("default_body", m)),
        Err(e) => eprintln!("skipping the default body: {e}"),
    }
    eprintln!("rayon threads: {}", rayon::current_num_threads());
    let mut rng = Rng(1);
    for (name, model) in &models {
        let s = model.num_betas().min(10);
        for &b in &[1usize, 64, 512] {
            let (betas, rot, transl) = inputs(b, s, &mut rng);
            let mut out = BodyOutput::default();
            let reps = if b == 512 { 5 } else { 20 };
            let ms = time_min(reps, || model.forward(&betas, &rot, &transl, &mut out).unwrap());
            report(name, "cpu_full", b, ms);
            let ms = time_min(reps, || model.forward_joints(&betas, &rot, &transl, &mut out).unwrap());
            report(name, "cpu_joints", b, ms);
        }
        // Differentiable path at batch 64: forward, and forward + backward of sum(vertices).
        let dev = Device::Cpu;
        let dm = DiffBody::new(model, &dev)?;
        for &b in &[1usize, 64] {
            let (betas, rot, transl) = inputs(b, s, &mut rng);
            let betas = Var::from_tensor(&Tensor::from_vec(betas, (b, s), &dev)?)?;
            let rot = Var::from_tensor(&Tensor::from_vec(rot, (b, 24, 3, 3), &dev)?)?;
            let transl = Var::from_tensor(&Tensor::from_vec(transl, (b, 3), &dev)?)?;
            let ms = time_min(10, || {
                dm.forward_rotmats(&betas, &rot, &transl).unwrap();
            });
            report(name, "candle_full_fwd", b, ms);
            let ms = time_min(10, || {
                let o = dm.forward_rotmats(&betas, &rot, &transl).unwrap();
                o.vertices.unwrap().sum_all().unwrap().backward().unwrap();
            });
            report(name, "candle_full_fwd_bwd", b, ms);
            let ms = time_min(10, || {
                let o = dm.forward_joints_rotmats(&betas, &rot, &transl).unwrap();
                o.keypoints.sum_all().unwrap().backward().unwrap();
            });
            report(name, "candle_joints_fwd_bwd", b, ms);
        }
    }
    Ok(())
}
