//! One ScoreHMR keypoint refinement (10 iterations x (25 inversion + 25 guided steps): 500
//! network evaluations and 250 guidance gradients per sample) with the official network size
//! (cond 3072, hidden 1024, 3 blocks; random weights) on the synthetic SMPL-size body, at
//! batch 1, 16 and 128. No early stopping (ScoreHMR's demo setting), so every run does the
//! same work.
//!
//!     cargo bench --profile dev --bench refine
//! Compare: tools/bench_refine_torch.py (the same loop in PyTorch + smplx). Prints one JSON
//! object per line.

#[path = "../tests/common/synth.rs"]
mod synth;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rigfit::body::{diff::DiffBody, BodyModel, BodyOutput};
use rigfit::diffusion::ddim::{refine, RefineConfig};
use rigfit::diffusion::{Denoiser, DenoiserConfig, Rng, Schedule};
use rigfit::geom::camera::Pinhole;
use rigfit::guide::{KeypointGuidance, KeypointObs};

fn main() -> rigfit::Result<()> {
    let dev = Device::Cpu;
    let model = BodyModel::new(synth::synthetic_smpl(0))?;
    let body = DiffBody::new(&model, &dev)?;
    let cfg = DenoiserConfig::official();
    let (den, _vm) = Denoiser::init(&cfg, 0, DType::F32, &dev)?;
    let sched = Schedule::scorehmr();
    let cam = Pinhole::from_focal(5000.0, 1920.0, 1080.0)?;
    let batches: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batches = if batches.is_empty() { vec![1, 16, 128] } else { batches };
    let mut rng = Rng::new(1);
    let mut rc = RefineConfig::keypoints();
    rc.early_stop = None;
    for b in batches {
        // Rest pose rotated to face the camera, small random perturbation; keypoints from it.
        let mut x6 = Vec::with_capacity(b * 144);
        for _ in 0..b {
            for j in 0..24 {
                let base: [f32; 6] = if j == 0 { [1., 0., 0., 0., -1., 0.] } else { [1., 0., 0., 0., 1., 0.] };
                x6.extend(base.iter().map(|&v| v + 0.05 * rng.normal() as f32));
            }
        }
        let rot: Vec<f32> = x6
            .chunks_exact(6)
            .flat_map(|c| rigfit::geom::rot::rot6d_to_matrix(&<[f32; 6]>::try_from(c).unwrap()))
            .collect();
        let cam_t: Vec<f32> = (0..b).flat_map(|_| [0.0f32, 0.2, 20.0]).collect();
        let mut out = BodyOutput::default();
        model.forward_joints(&[], &rot, &cam_t, &mut out)?;
        let kp: Vec<f32> = out
            .keypoints
            .chunks_exact(3)
            .flat_map(|p| {
                let uv = cam.project_point(&[p[0], p[1], p[2]]);
                [uv[0] + 3.0, uv[1] - 2.0, 0.9]
            })
            .collect();
        let cond = rng.normal_tensor(&[b, 3072], DType::F32, &dev)?;
        let x = Tensor::from_vec(x6, (b, 144), &dev)?;
        let run = || -> rigfit::Result<f64> {
            let obs = KeypointObs::new(&kp, &vec![cam; b], &vec![(1920, 1080); b], &dev, DType::F32)?;
            let betas = Tensor::zeros((b, 10), DType::F32, &dev)?;
            let mut g = KeypointGuidance::new(&body, betas, obs, &cam_t)?;
            let t0 = Instant::now();
            let o = refine(&den, &sched, &x, Some(&cond), &mut g, &rc, None)?;
            assert_eq!((o.evals, o.grads), (500, 250));
            Ok(t0.elapsed().as_secs_f64())
        };
        run()?; // warm-up
        let reps = if b >= 128 { 2 } else { 3 };
        let best = (0..reps).map(|_| run()).collect::<rigfit::Result<Vec<f64>>>()?.into_iter().fold(f64::MAX, f64::min);
        println!(
            "{{\"impl\":\"rigfit\",\"what\":\"refine_official\",\"batch\":{b},\"s_per_refinement\":{best:.4},\"ms_per_sample\":{:.3}}}",
            best * 1e3 / b as f64
        );
    }
    Ok(())
}
