//! The single-frame study behind models/DEFAULT_PRIOR.md ("Refinement against SMPLify"):
//! refinement settings against SMPLify from the same initial estimate, on held-out CMU poses seen
//! by the evaluation's synthetic cameras.
//!
//!     cargo run --example single_frame_study -- [PRIOR.safetensors|""] [SAMPLES]
//!
//! Environment:
//! - `SEED` (default 7, the evaluation's; the guidance settings were chosen on `SEED=1234`);
//! - `GRID="w,tau,step,iters,early;..."`: refinement settings to try (`w` the keypoint weight,
//!   ScoreHMR 0.003; `early` the early-stopping tolerance or `-`);
//! - `ORACLE_BETAS=1`: refine and score in the true shapes (how much the mean shape costs);
//! - `MULTI=K` (with `W`, `ITERS`): refine the K best hypotheses by reprojection and report the
//!   pick by final reprojection, by the HMR-Scorer, by the prior's denoising loss, and the oracle.
//!
//! Needs the CMU clips at ../shared/data/mocap/cmu.
use candle_core::{DType, Tensor};
use rigfit::body::BodyModel;
use rigfit::diffusion::ddim::{refine, RefineConfig};
use rigfit::fit::smplify::{smplify, SmplifyConfig};
use rigfit::fit::Fitter;
use rigfit::geom::camera::Pinhole;
use rigfit::guide::{KeypointGuidance, KeypointObs};
use rigfit::learn::eval::{fit_gmm, score_samples};
use rigfit::learn::synth::SynthConfig;

fn main() -> rigfit::error::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let prior_path = args.get(1).cloned().unwrap_or_default();
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(128);
    let clips = rigfit::learn::mocap::load_dir(std::path::Path::new("../shared/data/mocap/cmu"), 30.0)?;
    let (train, val) = rigfit::learn::train::split_poses(&clips);
    let dev = candle_core::Device::Cpu;
    let prior = if prior_path.is_empty() { rigfit::diffusion::Prior::default_prior(&dev)? } else { rigfit::diffusion::Prior::load(std::path::Path::new(&prior_path), &dev)? };
    let fitter = Fitter::new(BodyModel::default_body()?, prior)?;
    let gmm = fit_gmm(&train, 20_000, 7)?;
    let seed: u64 = std::env::var("SEED").map(|s| s.parse().unwrap()).unwrap_or(7);
    let samples = rigfit::learn::tune::domain_samples(&fitter.body, &val, n, &SynthConfig::default(), seed)?;
    let b = samples.len();
    let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
    let sizes: Vec<(u32, u32)> = samples.iter().map(|s| s.image_size).collect();
    let init = fitter.initialize(&kp, &cams, &[], 16, 40, 7)?;
    let s0 = score_samples(&fitter, &samples, &init.x, &init.cam_t, &[], 0.0)?;
    println!("init: PA {:.1} MPJPE {:.1} rep {:.1}", s0.pa_mpjpe, s0.mpjpe, s0.reprojection_px);
    let obs = KeypointObs::new(&kp, &cams, &sizes, &dev, DType::F32)?;
    let x0 = Tensor::from_slice(&init.x, (b, 144), &dev)?;
    let betas = Tensor::zeros((b, fitter.body.num_betas()), DType::F32, &dev)?;
    let so = smplify(&fitter.diff, &obs, &gmm, &x0, &betas, &init.cam_t, &SmplifyConfig::default())?;
    let xs: Vec<f32> = so.x6d.flatten_all()?.to_vec1()?;
    let ss = score_samples(&fitter, &samples, &xs, &so.cam_t, &[], 0.0)?;
    println!("smplify: PA {:.1} MPJPE {:.1} rep {:.1}", ss.pa_mpjpe, ss.mpjpe, ss.reprojection_px);
    let sb: Vec<f32> = so.betas.flatten_all()?.to_vec1()?;
    let ss = score_samples(&fitter, &samples, &xs, &so.cam_t, &sb, 0.0)?;
    println!("smplify scored with its betas: PA {:.1} MPJPE {:.1} PVE {:.1} rep {:.1}", ss.pa_mpjpe, ss.mpjpe, ss.pve, ss.reprojection_px);
    let spin = SmplifyConfig { crop_px: Some(224.0), ..SmplifyConfig::default() };
    let so2 = smplify(&fitter.diff, &obs, &gmm, &x0, &betas, &init.cam_t, &spin)?;
    let xs2: Vec<f32> = so2.x6d.flatten_all()?.to_vec1()?;
    let ss2 = score_samples(&fitter, &samples, &xs2, &so2.cam_t, &[], 0.0)?;
    println!("smplify in SPIN crops: PA {:.1} MPJPE {:.1} rep {:.1}", ss2.pa_mpjpe, ss2.mpjpe, ss2.reprojection_px);
    let true_b: Vec<f32> = samples.iter().flat_map(|s| s.betas.iter().copied()).collect();
    let cond = fitter.prior.condition(&kp, &cams)?;
    let grid: Vec<(f64, u32, u32, usize, Option<f64>)> = std::env::var("GRID").ok().map(|g| {
        g.split(';').map(|c| { let v: Vec<&str> = c.split(',').collect(); (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap(), v[3].parse().unwrap(), if v[4] == "-" { None } else { Some(v[4].parse().unwrap()) }) }).collect()
    }).unwrap_or(vec![(0.003, 50, 2, 10, Some(1e-5))]);
    for (w, tau, step, iters, es) in grid {
        let t = std::time::Instant::now();
        let oracle = std::env::var("ORACLE_BETAS").is_ok();
        let bt = if oracle { Tensor::from_slice(&true_b, (b, fitter.body.num_betas()), &dev)? } else { Tensor::zeros((b, fitter.body.num_betas()), DType::F32, &dev)? };
        let mut g = KeypointGuidance::new(&fitter.diff, bt, obs.clone(), &init.cam_t)?;
        g.w_kp = w;
        let cfg = RefineConfig { tau, step, iters, grad_scale: 1.0, early_stop: es };
        let out = refine(&fitter.prior.denoiser, &fitter.schedule, &x0, Some(&cond), &mut g, &cfg, None)?;
        let xr: Vec<f32> = out.x0.flatten_all()?.to_vec1()?;
        let s = score_samples(&fitter, &samples, &xr, &g.camera()?, if oracle { &true_b } else { &[] }, 0.0)?;
        println!("refine w {w} tau {tau} step {step} iters {iters} es {es:?}: PA {:.1} MPJPE {:.1} rep {:.1} ({:.1} s)", s.pa_mpjpe, s.mpjpe, s.reprojection_px, t.elapsed().as_secs_f64());
    }
    if let Ok(k) = std::env::var("MULTI") {
        let k: usize = k.parse().unwrap();
        let w: f64 = std::env::var("W").map(|s| s.parse().unwrap()).unwrap_or(0.03);
        let iters: usize = std::env::var("ITERS").map(|s| s.parse().unwrap()).unwrap_or(20);
        let nh = 16;
        let x = fitter.sample_hypotheses(&kp, &cams, nh, 40, 7)?;
        let placed = fitter.place_hypotheses(&x, &kp, &cams, nh, &[])?;
        // top-k by reprojection per observation
        let mut xk = Vec::new();
        let mut tk = Vec::new();
        for i in 0..b {
            let mut idx: Vec<usize> = (0..nh).collect();
            idx.sort_by(|&a, &c| placed.reprojection_px[i * nh + a].partial_cmp(&placed.reprojection_px[i * nh + c]).unwrap());
            for &h in &idx[..k] {
                let j = i * nh + h;
                xk.extend_from_slice(&x[j * 144..(j + 1) * 144]);
                tk.extend_from_slice(&placed.cam_t[j * 3..(j + 1) * 3]);
            }
        }
        let rep = |v: &[f32]| -> Vec<f32> { v.chunks(75).flat_map(|c| c.to_vec()).collect::<Vec<f32>>().chunks(75).flat_map(|c| std::iter::repeat(c.to_vec()).take(k).flatten()).collect() };
        let kpk = rep(&kp);
        let camk: Vec<Pinhole> = cams.iter().flat_map(|c| std::iter::repeat(*c).take(k)).collect();
        let sizek: Vec<(u32, u32)> = sizes.iter().flat_map(|c| std::iter::repeat(*c).take(k)).collect();
        let t = std::time::Instant::now();
        let (xr, tr) = fitter.refine_view(&xk, &tk, &kpk, &camk, &sizek, &[], &RefineConfig { tau: 50, step: 2, iters, grad_scale: w / 0.003, early_stop: None }, None, None)
            .map(|r| r)?;
        let _ = (w, &tr);
        println!("refined {} candidates in {:.1} s", b * k, t.elapsed().as_secs_f64());
        let errs_init = rigfit::learn::tune::hypothesis_errors(&fitter.body, &samples, &xk, k, &[], false)?;
        let errs = rigfit::learn::tune::hypothesis_errors(&fitter.body, &samples, &xr, k, &[], false)?;
        let pl = fitter.place_hypotheses(&xr, &kp, &cams, k, &[])?;
        let sc = rigfit::learn::scorer::Scorer::load(std::path::Path::new("models/hmr_scorer.safetensors"), &dev)?;
        let f = rigfit::learn::scorer::features(&xr, &pl, &kp, &cams, k);
        let scores = sc.score(&f, &dev)?;
        let (mut first, mut orc, mut byrep, mut bysc, mut mean_all, mut orc0) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..b {
            let r = i * k..(i + 1) * k;
            first += errs[i * k][1] as f64;
            orc += r.clone().map(|j| errs[j][1]).fold(f32::INFINITY, f32::min) as f64;
            orc0 += r.clone().map(|j| errs_init[j][1]).fold(f32::INFINITY, f32::min) as f64;
            mean_all += r.clone().map(|j| errs[j][1] as f64).sum::<f64>() / k as f64;
            let br = r.clone().min_by(|&a, &c| pl.reprojection_px[a].partial_cmp(&pl.reprojection_px[c]).unwrap()).unwrap();
            byrep += errs[br][1] as f64;
            let bs = r.clone().max_by(|&a, &c| scores[a].partial_cmp(&scores[c]).unwrap()).unwrap();
            bysc += errs[bs][1] as f64;
        }
        // prior likelihood (denoising loss) of every refined candidate, noise shared within an observation
        let idx: Vec<u32> = (0..b as u32).flat_map(|i| std::iter::repeat(i).take(k)).collect();
        let condk = cond.index_select(&Tensor::from_vec(idx.clone(), b * k, &dev)?, 0)?;
        let xrt = Tensor::from_slice(&xr, (b * k, 144), &dev)?;
        let levels = [10u32, 30, 60, 100, 200, 400, 700];
        let m = 8;
        let mut el = vec![vec![0.0f64; b * k]; levels.len()];
        let mut rng = rigfit::diffusion::Rng::new(99);
        for (li, &t) in levels.iter().enumerate() {
            for _ in 0..m {
                let nz = rng.normal_tensor(&[b, 144], DType::F32, &dev)?.index_select(&Tensor::from_vec(idx.clone(), b * k, &dev)?, 0)?;
                let tt = rigfit::diffusion::timestep_full(t, b * k, &dev)?;
                let l: Vec<f32> = rigfit::diffusion::training_loss_per_sample(&fitter.prior.denoiser, &fitter.schedule, &xrt, Some(&condk), &tt, &nz)?.to_vec1()?;
                for j in 0..b * k { el[li][j] += l[j] as f64; }
            }
        }
        let pick_by = |key: &dyn Fn(usize) -> f64| -> f64 {
            (0..b).map(|i| { let j = (i * k..(i + 1) * k).min_by(|&a, &c| key(a).partial_cmp(&key(c)).unwrap()).unwrap(); errs[j][1] as f64 }).sum::<f64>() / b as f64
        };
        for (li, &t) in levels.iter().enumerate() {
            println!("  pick by prior loss at t {t}: {:.1}", pick_by(&|j| el[li][j]));
        }
        println!("  pick by prior loss summed t<=100: {:.1}", pick_by(&|j| el[..4].iter().map(|v| v[j]).sum()));
        println!("  pick by prior loss summed all: {:.1}", pick_by(&|j| el.iter().map(|v| v[j]).sum()));
        // The posterior-mean estimate: the mean of the K refined 6D poses (re-orthonormalised).
        let mut mean6 = vec![0.0f32; b * 144];
        for i in 0..b {
            for h in 0..k {
                for d in 0..144 {
                    mean6[i * 144 + d] += xr[(i * k + h) * 144 + d] / k as f32;
                }
            }
        }
        let em = rigfit::learn::tune::hypothesis_errors(&fitter.body, &samples, &mean6, 1, &[], false)?;
        println!("  mean of the {k} refined poses: {:.1}", em.iter().map(|e| e[1] as f64).sum::<f64>() / b as f64);
        let n = b as f64;
        println!("K {k} iters {iters}: first {:.1} mean {:.1} oracle {:.1} (init oracle {:.1}) by-reproj {:.1} by-scorer {:.1}", first / n, mean_all / n, orc / n, orc0 / n, byrep / n, bysc / n);
    }
    Ok(())
}
