//! ADHMR on rigfit's prior: the HMR-Scorer learns to rank hypotheses by their true error, the
//! Diffusion-DPO loss is exact and moves the policy toward winners, label corruptions do what
//! they claim, and cleaning statistics count right.

use candle_core::{DType, Device, Tensor};
use rigfit::body::{BodyModel, BodyOutput};
use rigfit::diffusion::{Prior, Rng, Schedule};
use rigfit::fit::Fitter;
use rigfit::geom::rot::rot6d_to_matrices;
use rigfit::learn::clean::{clean_stats, corrupt, keep_mask, Corruption};
use rigfit::learn::dpo::{antithetic_timesteps, dpo_loss, train_dpo, DpoConfig, Pairs};
use rigfit::learn::scorer::{build_pool, evaluate_scorer, pearson, spearman, train_scorer, Scorer, ScorerConfig, ScorerTrainConfig};
use rigfit::learn::synth::{Generator, SynthConfig};
use rigfit::learn::tune::Tuner;

/// Random natural-ish poses `[N * 216]`: small rotations about random axes.
fn poses(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(n * 216);
    for _ in 0..n * 24 {
        let a = [rng.normal() * 0.25, rng.normal() * 0.25, rng.normal() * 0.25];
        v.extend_from_slice(&rigfit::geom::rot::axis_angle_to_matrix(&[a[0] as f32, a[1] as f32, a[2] as f32]));
    }
    v
}

fn samples(body: &BodyModel, n: usize, seed: u64) -> Vec<rigfit::learn::synth::Sample> {
    let p = poses(n, seed);
    let refs: Vec<&[f32]> = p.chunks_exact(216).collect();
    Generator::new(body, SynthConfig::default()).generate(&refs, &mut Rng::new(seed ^ 1)).unwrap()
}

#[test]
fn rank_correlations_are_right() {
    let a = [1.0, 2.0, 3.0, 4.0];
    assert!((spearman(&a, &[10.0, 20.0, 30.0, 1000.0]) - 1.0).abs() < 1e-12, "monotone = 1");
    assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    assert!(pearson(&a, &[10.0, 20.0, 30.0, 1000.0]) < 0.9, "Pearson sees the outlier");
    // Ties get mean ranks: [1, 1, 2] ranks as [0.5, 0.5, 2].
    assert!((spearman(&[1.0, 1.0, 2.0], &[0.0, 1.0, 2.0]) - pearson(&[0.5, 0.5, 2.0], &[0.0, 1.0, 2.0])).abs() < 1e-12);
}

#[test]
fn scorer_learns_to_rank_hypotheses_by_their_true_error() {
    let fitter = Fitter::default_cpu().unwrap();
    let cfg = ScorerTrainConfig { observations: 160, sampled: 3, perturbed: 7, steps: 250, groups: 16, scorer: ScorerConfig { hidden: 128, layers: 2, ..Default::default() }, ..Default::default() };
    let train = samples(&fitter.body, cfg.observations, 1);
    let val = samples(&fitter.body, 48, 2);
    let pool = build_pool(&fitter, &train, &cfg, 3, &mut |_, _| {}).unwrap();
    let vpool = build_pool(&fitter, &val, &cfg, 4, &mut |_, _| {}).unwrap();
    assert_eq!(pool.errors.len(), 160 * 10);
    // Errors are real: perturbed hypotheses at 0.02 rad are close to the truth.
    assert!(pool.errors.iter().all(|e| e.iter().all(|v| v.is_finite() && *v >= 0.0)));
    let untrained = Scorer::init(&cfg.scorer, 0, &Device::Cpu).unwrap().0;
    let before = evaluate_scorer(&untrained, &vpool, "val", &Device::Cpu).unwrap();
    let (scorer, _) = train_scorer(&pool, &cfg, &Device::Cpu, &mut |_, _, _| true).unwrap();
    let after = evaluate_scorer(&scorer, &vpool, "val", &Device::Cpu).unwrap();
    let (b, a) = (before.correlations[1].spearman_within, after.correlations[1].spearman_within);
    assert!(a > 0.6 && a > b + 0.3, "PA-MPJPE Spearman within observations: untrained {b:.3}, trained {a:.3}");
    assert!(after.correlations[0].spearman > 0.5, "global MPJPE Spearman {:.3}", after.correlations[0].spearman);
    // File round trip: same scores; a prior file is refused with a clear error.
    let dir = std::env::temp_dir().join(format!("rigfit_scorer_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("s.safetensors");
    scorer.save(&p).unwrap();
    let back = Scorer::load(&p, &Device::Cpu).unwrap();
    let f = &vpool.feats[..10 * rigfit::learn::scorer::SCORER_FEATURES];
    assert_eq!(scorer.score(f, &Device::Cpu).unwrap(), back.score(f, &Device::Cpu).unwrap());
    let pp = dir.join("p.safetensors");
    Prior::default_prior(&Device::Cpu).unwrap().save(&pp).unwrap();
    let e = Scorer::load(&pp, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("scorer_config_json"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn antithetic_timesteps_pair_t_with_its_mirror() {
    let t: Vec<u32> = antithetic_timesteps(10, 1000, &mut Rng::new(5), &Device::Cpu).unwrap().to_vec1().unwrap();
    assert_eq!(t.len(), 10);
    for i in 0..4 {
        assert_eq!(t[i] + t[i + 6], 999);
    }
}

#[test]
fn dpo_loss_is_log2_at_the_reference_and_training_prefers_winners() {
    let dev = Device::Cpu;
    let base = Prior::default_prior(&dev).unwrap();
    let sched = Schedule::scorehmr();
    let body = BodyModel::default_body().unwrap();
    let s = samples(&body, 8, 9);
    let mut rng = Rng::new(3);
    // Winners: the truths; losers: the truths with jitter (a clear preference).
    let mut pairs = Pairs::default();
    let rest = body.rest_joints(&[]).unwrap();
    for smp in &s {
        let l = corrupt(&smp.x, Corruption::Jitter, &rest, body.parents(), &mut rng);
        let f = rigfit::diffusion::condition_features(&smp.keypoints, &smp.camera);
        pairs.x_w.extend_from_slice(&smp.x);
        pairs.x_l.extend_from_slice(&l);
        pairs.feats.extend_from_slice(&f);
        pairs.gap.push(f32::NAN);
    }
    let n = pairs.len();
    let xw = Tensor::from_slice(&pairs.x_w, (n, 144), &dev).unwrap();
    let xl = Tensor::from_slice(&pairs.x_l, (n, 144), &dev).unwrap();
    let ft = Tensor::from_slice(&pairs.feats, (n, 78), &dev).unwrap();
    let t = antithetic_timesteps(n, 1000, &mut rng, &dev).unwrap();
    let noise = rng.normal_tensor(&[n, 144], DType::F32, &dev).unwrap();
    let (l0, _) = dpo_loss(&base, &base, &sched, &xw, &xl, &ft, &t, &noise, 1000.0).unwrap();
    assert!((l0.to_scalar::<f32>().unwrap() - std::f32::consts::LN_2).abs() < 1e-6, "policy = reference gives log 2");
    // A trainable copy is the same function as the base.
    let tuner = Tuner::from_prior(&base, (0.9, 0.999)).unwrap();
    let (l1, _) = dpo_loss(&tuner.prior, &base, &sched, &xw, &xl, &ft, &t, &noise, 1000.0).unwrap();
    assert!((l1.to_scalar::<f32>().unwrap() - std::f32::consts::LN_2).abs() < 1e-6);
    // Training on the pairs: the DPO loss on fresh t / noise falls below log 2 (policy's
    // denoising error on winners drops relative to losers, compared with the reference).
    let cfg = DpoConfig { steps: 30, batch: 8, lr: 2e-5, beta: 1000.0, ..Default::default() };
    let (tuned, log) = train_dpo(&base, &pairs, &Pairs::default(), &cfg, &mut |_, _, _, _| true).unwrap();
    assert_eq!(log.last().unwrap().step, 30);
    let mut total = 0.0;
    for k in 0..4 {
        let mut r = Rng::new(100 + k);
        let t = antithetic_timesteps(n, 1000, &mut r, &dev).unwrap();
        let noise = r.normal_tensor(&[n, 144], DType::F32, &dev).unwrap();
        total += dpo_loss(&tuned, &base, &sched, &xw, &xl, &ft, &t, &noise, 1000.0).unwrap().0.to_scalar::<f32>().unwrap();
    }
    assert!(total / 4.0 < 0.9 * std::f32::consts::LN_2, "held-out DPO loss {:.4} vs log 2", total / 4.0);
}

#[test]
fn depth_corruption_reflects_a_limb_through_the_image_plane() {
    let body = BodyModel::default_body().unwrap();
    let s = &samples(&body, 1, 21)[0];
    let rest = body.rest_joints(&s.betas).unwrap();
    let joints = |x: &[f32]| {
        let mut r = vec![0.0f32; 216];
        rot6d_to_matrices(x, &mut r).unwrap();
        let mut o = BodyOutput::default();
        body.forward_joints(&s.betas, &r, &[0.0; 3], &mut o).unwrap();
        o.joints
    };
    let a = joints(&s.x);
    let mut hit = 0;
    for seed in 0..8 {
        let y = corrupt(&s.x, Corruption::Depth, &rest, body.parents(), &mut Rng::new(seed));
        let b = joints(&y);
        // Which limb moved: the (joint, child) whose child changed.
        for (j, c) in [(16usize, 18usize), (17, 19), (1, 4), (2, 5)] {
            let da: Vec<f32> = (0..3).map(|d| a[c * 3 + d] - a[j * 3 + d]).collect();
            let db: Vec<f32> = (0..3).map(|d| b[c * 3 + d] - b[j * 3 + d]).collect();
            if (0..3).any(|d| (da[d] - db[d]).abs() > 1e-4) {
                hit += 1;
                assert!((da[0] - db[0]).abs() < 1e-4 && (da[1] - db[1]).abs() < 1e-4, "image-plane direction kept");
                assert!((da[2] + db[2]).abs() < 1e-4, "depth negated: {} vs {}", da[2], db[2]);
                assert!((b[j * 3] - a[j * 3]).abs() < 1e-5, "the limb root stays");
            }
        }
    }
    assert!(hit >= 6, "most draws move a limb ({hit} of 8)");
    // A limb swap changes the pose; swapping twice the same chain restores it.
    let f = corrupt(&s.x, Corruption::FlipLimbs, &rest, body.parents(), &mut Rng::new(1));
    assert!(f.iter().zip(&s.x).any(|(p, q)| (p - q).abs() > 1e-3));
    let ff = corrupt(&f, Corruption::FlipLimbs, &rest, body.parents(), &mut Rng::new(1));
    assert!(ff.iter().zip(&s.x).all(|(p, q)| (p - q).abs() < 1e-4), "flip is an involution");
}

#[test]
fn cleaning_drops_the_lowest_scores_and_counts_precision_and_recall() {
    let scores = [0.9, -2.0, 0.5, -1.0, 0.7, 0.1, 0.8, 0.6, -3.0, 0.4];
    let keep = keep_mask(&scores, 0.3);
    assert_eq!(keep.iter().filter(|k| !**k).count(), 3);
    assert!(!keep[1] && !keep[3] && !keep[8]);
    let kinds = [None, Some(Corruption::Depth), None, None, Some(Corruption::Jitter), None, None, None, Some(Corruption::FlipLimbs), None];
    let st = clean_stats(&kinds, &keep);
    assert_eq!((st.corrupted, st.dropped), (3, 3));
    assert!((st.precision - 2.0 / 3.0).abs() < 1e-12 && (st.recall - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(st.recall_by_kind[2].1, 0.0, "the jitter sample was kept");
}
