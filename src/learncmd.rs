//! `rigfit train scorer`, `rigfit train dpo` and `rigfit clean`: ADHMR's HMR-Scorer, Diffusion-DPO
//! and data cleaning (the logic is in `rigfit::learn`; this is the command-line glue).

use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rigfit::body::BodyModel;
use rigfit::diffusion::Prior;
use rigfit::fit::Fitter;
use rigfit::learn::scorer::{build_pool, evaluate_scorer, train_scorer, Scorer, ScorerEval, ScorerTrainConfig};
use rigfit::learn::synth::SynthConfig;
use rigfit::learn::tune::{domain_samples, Domains, EvalSets};
use rigfit::{Error, Result};

fn bar(len: usize, quiet: bool) -> ProgressBar {
    let b = if quiet { ProgressBar::hidden() } else { ProgressBar::new(len as u64) };
    b.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}").expect("template").progress_chars("=> "));
    b
}

fn load_prior(p: Option<&Path>) -> Result<Prior> {
    match p {
        Some(p) => Prior::load(p, &Device::Cpu),
        None => Prior::default_prior(&Device::Cpu),
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    rigfit::io::write_atomic(path, serde_json::to_string_pretty(v).expect("json").as_bytes())
}

#[derive(Args)]
pub struct ScorerArgs {
    /// The shared mocap folder (with cmu/ and cmu-daz/).
    #[arg(long)]
    data: PathBuf,
    /// Where the scorer is written.
    #[arg(long, default_value = "out/scorer/scorer.safetensors")]
    out: PathBuf,
    /// Prior that samples the hypotheses (default: the embedded prior).
    #[arg(long)]
    prior: Option<PathBuf>,
    /// Training observations (CMU training clips).
    #[arg(long, default_value_t = 3000)]
    observations: usize,
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Validation observations per domain.
    #[arg(long, default_value_t = 256)]
    val: usize,
    /// Observations per domain for the fitting comparison (reprojection- vs scorer-picked).
    #[arg(long, default_value_t = 96)]
    fit_samples: usize,
    #[arg(long)]
    quiet: bool,
}

fn scorer_table(evals: &[ScorerEval]) -> String {
    let mut s = String::from("| domain | metric | Pearson | Spearman | Spearman within observation |\n|---|---|---|---|---|\n");
    for e in evals {
        for c in &e.correlations {
            s.push_str(&format!("| {} | {} | {:.3} | {:.3} | {:.3} |\n", e.domain, c.metric, c.pearson, c.spearman, c.spearman_within));
        }
    }
    s.push_str("\n| domain | sampled hypotheses: mean PA-MPJPE | picked by reprojection | picked by scorer | oracle |\n|---|---|---|---|---|\n");
    for e in evals {
        s.push_str(&format!("| {} | {:.1} | {:.1} | {:.1} | {:.1} |\n", e.domain, e.mean_pa, e.pick_reprojection_pa, e.pick_scorer_pa, e.oracle_pa));
    }
    s
}

pub fn train_scorer_cmd(a: &ScorerArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let log = |s: &str| eprintln!("[{:6.1} s] {s}", t0.elapsed().as_secs_f64());
    let dom = Domains::load(&a.data, &mut |s| log(s))?;
    let fitter = Fitter::new(BodyModel::default_body()?, load_prior(a.prior.as_deref())?)?;
    let cfg = ScorerTrainConfig { observations: a.observations, steps: a.steps, lr: a.lr, seed: a.seed, val_observations: a.val, ..ScorerTrainConfig::default() };
    let synth = SynthConfig::default();
    let train = domain_samples(&fitter.body, &dom.cmu_train, cfg.observations, &synth, a.seed ^ 0x7EA1)?;
    let pb = bar(train.len(), a.quiet);
    pb.set_message("hypotheses (CMU training clips)");
    let pool = build_pool(&fitter, &train, &cfg, a.seed, &mut |d, _| pb.set_position(d as u64))?;
    pb.finish();
    log(&format!("training pool: {} observations x {} hypotheses", train.len(), pool.n));
    // Validation pools: the 3D of the validation clips only measures.
    let vcfg = ScorerTrainConfig { sampled: 12, perturbed: 3, ..cfg.clone() };
    let cmu_val = domain_samples(&fitter.body, &dom.cmu_val, a.val, &synth, 101)?;
    let daz_val = domain_samples(&fitter.body, &dom.daz_val, a.val, &synth, 102)?;
    let pool_cmu = build_pool(&fitter, &cmu_val, &vcfg, 1001, &mut |_, _| {})?;
    let pool_daz = build_pool(&fitter, &daz_val, &vcfg, 1002, &mut |_, _| {})?;
    log("validation pools ready");
    let pb = bar(cfg.steps, a.quiet);
    let ts = std::time::Instant::now();
    let (mut scorer, loss) = train_scorer(&pool, &cfg, &Device::Cpu, &mut |k, _, l| {
        pb.set_position(k as u64);
        pb.set_message(format!("loss {l:.4}"));
        if a.quiet && k % 500 == 0 {
            eprintln!("step {k}: loss {l:.4}");
        }
        true
    })?;
    pb.finish();
    let train_s = ts.elapsed().as_secs_f64();
    let evals = vec![evaluate_scorer(&scorer, &pool_cmu, "CMU val", &Device::Cpu)?, evaluate_scorer(&scorer, &pool_daz, "dance val", &Device::Cpu)?];
    // Time per scored hypothesis: features + network, batched.
    let tt = std::time::Instant::now();
    let kp: Vec<f32> = cmu_val.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<_> = cmu_val.iter().map(|s| s.camera).collect();
    let placed = fitter.place_hypotheses(&pool_cmu.x, &kp, &cams, pool_cmu.n, &[])?;
    let f = rigfit::learn::scorer::features(&pool_cmu.x, &placed, &kp, &cams, pool_cmu.n);
    let _ = scorer.score(&f, &Device::Cpu)?;
    let ms = tt.elapsed().as_secs_f64() * 1000.0 / pool_cmu.errors.len().max(1) as f64;
    scorer.config.provenance = serde_json::json!({"command": std::env::args().collect::<Vec<_>>().join(" "), "train": cfg, "final_loss": loss});
    if let Some(d) = a.out.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    scorer.save(&a.out)?;
    log(&format!("wrote {} ({} parameters); trained in {train_s:.0} s", a.out.display(), scorer.num_params()));
    // Fitting: reprojection-picked vs scorer-picked initial estimates, before and after refinement.
    let sets = EvalSets::new(&fitter.body, &dom, a.fit_samples, 7)?;
    let mut fitter = fitter;
    let before = sets.report(&fitter, "pick by reprojection", 16, true)?;
    fitter.scorer = Some(Scorer::load(&a.out, &Device::Cpu)?);
    let after = sets.report(&fitter, "pick by scorer", 16, true)?;
    let mut md = format!("# HMR-Scorer\n\nTrained in {train_s:.0} s on {} observations x {} hypotheses; {:.3} ms per scored hypothesis (features + network, batched, this CPU).\n\n", train.len(), pool.n, ms);
    md.push_str(&scorer_table(&evals));
    md.push_str("\n## Fitting: initial estimate picked by reprojection vs by the scorer (16 hypotheses)\n\n");
    md.push_str(&rigfit::learn::tune::markdown(&[before.clone(), after.clone()]));
    println!("{md}");
    let md_path = a.out.with_extension("md");
    rigfit::io::write_atomic(&md_path, md.as_bytes())?;
    write_json(&a.out.with_extension("json"), &serde_json::json!({"config": cfg, "final_loss": loss, "seconds": train_s, "ms_per_hypothesis": ms, "validation": evals, "fitting": [before, after]}))?;
    log(&format!("wrote {} and .json", md_path.display()));
    Ok(())
}

#[derive(Args)]
pub struct DpoArgs {
    /// The shared mocap folder (with cmu/ and cmu-daz/).
    #[arg(long)]
    data: PathBuf,
    /// The HMR-Scorer that ranks the 2D-only pairs (rigfit train scorer).
    #[arg(long)]
    scorer: PathBuf,
    /// Base prior (default: the embedded prior); also the frozen reference.
    #[arg(long)]
    prior: Option<PathBuf>,
    /// Where the fine-tuned prior is written (the sweep's best by a held-out 2D measure); the
    /// report goes beside it (.md, .json).
    #[arg(long, default_value = "out/dpo/prior.safetensors")]
    out: PathBuf,
    /// 2D-only observations of the new domain (cmu-daz training clips).
    #[arg(long, default_value_t = 1000)]
    obs2d: usize,
    /// 3D-labelled observations (cmu training clips); 0 for 2D pairs only.
    #[arg(long, default_value_t = 4000)]
    obs3d: usize,
    /// Hypotheses per 2D observation (ADHMR: 50).
    #[arg(long, default_value_t = 50)]
    hypotheses: usize,
    /// DPO beta; repeat for a sweep.
    #[arg(long, default_values_t = vec![1000.0])]
    beta: Vec<f64>,
    /// Learning rate; repeat for a sweep.
    #[arg(long, default_values_t = vec![1e-5])]
    lr: Vec<f64>,
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Observations per domain in the before/after evaluation.
    #[arg(long, default_value_t = 96)]
    eval_samples: usize,
    #[arg(long)]
    quiet: bool,
}

pub fn train_dpo_cmd(a: &DpoArgs) -> Result<()> {
    use rigfit::learn::dpo::{pairs_2d, pairs_3d, train_dpo, DpoConfig};
    let t0 = std::time::Instant::now();
    let log = |s: &str| eprintln!("[{:6.1} s] {s}", t0.elapsed().as_secs_f64());
    let dom = Domains::load(&a.data, &mut |s| log(s))?;
    let base = load_prior(a.prior.as_deref())?;
    let mut fitter = Fitter::new(BodyModel::default_body()?, base.clone())?;
    fitter.scorer = Some(Scorer::load(&a.scorer, &Device::Cpu)?);
    let synth = SynthConfig::default();
    let cfg0 = DpoConfig { hypotheses: a.hypotheses, steps: a.steps, batch: a.batch, seed: a.seed, ..DpoConfig::default() };
    // 2D-only data: only the keypoints and cameras of the cmu-daz observations leave this block.
    let (kp2d, cams2d) = {
        let s = domain_samples(&fitter.body, &dom.daz_train, a.obs2d, &synth, a.seed ^ 0x2D)?;
        (s.iter().flat_map(|s| s.keypoints.clone()).collect::<Vec<f32>>(), s.iter().map(|s| s.camera).collect::<Vec<_>>())
    };
    let pb = bar(cams2d.len(), a.quiet);
    pb.set_message("2D pairs: sampling and scoring");
    let p2 = pairs_2d(&fitter, &kp2d, &cams2d, &cfg0, &mut |d, _| pb.set_position(d as u64))?;
    pb.finish();
    let p3 = if a.obs3d > 0 { pairs_3d(&fitter, &domain_samples(&fitter.body, &dom.cmu_train, a.obs3d, &synth, a.seed ^ 0x3D)?, a.seed)? } else { Default::default() };
    log(&format!("{} 2D pairs (mean scorer gap {:.2}), {} 3D pairs", p2.len(), p2.gap.iter().sum::<f32>() / p2.len().max(1) as f32, p3.len()));
    let sets = EvalSets::new(&fitter.body, &dom, a.eval_samples, 7)?;
    // Evaluate every prior with the same picking rule (reprojection) so that the prior alone changes.
    let mut efit = Fitter::new(BodyModel::default_body()?, base.clone())?;
    let mut reports = vec![sets.report(&efit, "base", 16, true)?];
    log("base evaluated");
    let mut runs = Vec::new();
    let mut best: Option<(f64, usize, Prior)> = None;
    for &beta in &a.beta {
        for &lr in &a.lr {
            let cfg = DpoConfig { beta, lr, ..cfg0.clone() };
            let pb = bar(cfg.steps, a.quiet);
            let ts = std::time::Instant::now();
            let (mut prior, dlog) = train_dpo(&base, &p2, &p3, &cfg, &mut |k, _, l, acc| {
                pb.set_position(k as u64);
                pb.set_message(format!("beta {beta} lr {lr:e}: loss {l:.4} acc {acc:.2}"));
                if a.quiet && k % 100 == 0 {
                    eprintln!("[{:6.1} s] beta {beta} lr {lr:e}: step {k}, loss {l:.4}, implicit accuracy {acc:.2}", t0.elapsed().as_secs_f64());
                }
                true
            })?;
            pb.finish();
            let secs = ts.elapsed().as_secs_f64();
            prior.config.provenance = serde_json::json!({"command": std::env::args().collect::<Vec<_>>().join(" "), "dpo": cfg, "pairs_2d": p2.len(), "pairs_3d": p3.len()});
            efit.prior = prior.clone();
            let label = format!("DPO beta {beta} lr {lr:e}");
            let r = sets.report(&efit, &label, 16, true)?;
            log(&format!("{label}: {secs:.0} s; dance hyp. PA-MPJPE {:.1} (base {:.1}), CMU {:.1} (base {:.1}); dance PCK {:.3}", r.daz.hyp_pa_mpjpe, reports[0].daz.hyp_pa_mpjpe, r.cmu.hyp_pa_mpjpe, reports[0].cmu.hyp_pa_mpjpe, r.daz.pck));
            // Selection on a held-out 2D measure only (dance PCK of the hypotheses), never the 3D.
            if best.as_ref().is_none_or(|b| r.daz.pck > b.0) {
                best = Some((r.daz.pck, reports.len(), prior.clone()));
            }
            runs.push(serde_json::json!({"config": cfg, "seconds": secs, "seconds_per_step": secs / cfg.steps as f64, "log": dlog}));
            reports.push(r);
        }
    }
    let (_, bi, bp) = best.expect("at least one run");
    if let Some(d) = a.out.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    bp.save(&a.out)?;
    let mut md = format!("# Diffusion-DPO\n\n{} 2D pairs (cmu-daz training clips, {} observations x {} hypotheses ranked by the scorer), {} 3D pairs (cmu training clips, winner = truth); {} steps, batch {}. Selected (best dance PCK, a 2D measure): **{}**.\n\n", p2.len(), cams2d.len(), a.hypotheses, p3.len(), a.steps, a.batch, reports[bi].label);
    md.push_str(&rigfit::learn::tune::markdown(&reports));
    println!("{md}");
    rigfit::io::write_atomic(&a.out.with_extension("md"), md.as_bytes())?;
    write_json(&a.out.with_extension("json"), &serde_json::json!({"reports": reports, "runs": runs, "selected": reports[bi].label}))?;
    log(&format!("wrote {}", a.out.display()));
    Ok(())
}

#[derive(Args)]
pub struct CleanArgs {
    /// The shared mocap folder (with cmu/ and cmu-daz/).
    #[arg(long)]
    data: PathBuf,
    /// The HMR-Scorer (rigfit train scorer).
    #[arg(long)]
    scorer: PathBuf,
    /// Output folder: the three priors, the report (.md, .json).
    #[arg(long, default_value = "out/clean")]
    out: PathBuf,
    /// Size of the fixed training set (observations with labels, cmu training clips).
    #[arg(long, default_value_t = 20000)]
    samples: usize,
    /// Fraction of labels corrupted (flipped limbs, depth reflections, jitter in turn).
    #[arg(long, default_value_t = 0.2)]
    corrupt: f64,
    /// Fraction of the lowest-scoring labels dropped.
    #[arg(long, default_value_t = 0.2)]
    drop: f64,
    /// Training budget of each of the three priors (same for all).
    #[arg(long, default_value_t = 2500)]
    steps: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Observations per domain in the evaluation.
    #[arg(long, default_value_t = 96)]
    eval_samples: usize,
    /// Only score and report precision / recall (no training).
    #[arg(long)]
    no_train: bool,
    /// Fine-tune this prior on each set instead of training from scratch (when the CPU budget
    /// cannot train three priors to a useful level).
    #[arg(long)]
    from_prior: Option<PathBuf>,
    /// Peak learning rate (default: training's 1e-3 from scratch, 1e-4 with --from-prior).
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    quiet: bool,
}

pub fn clean_cmd(a: &CleanArgs) -> Result<()> {
    use rigfit::learn::clean::{clean_stats, corrupt_samples, keep_mask, score_labels};
    use rigfit::learn::train::{finetune_prior_fixed, train_prior_fixed, TrainConfig};
    let t0 = std::time::Instant::now();
    let log = |s: &str| eprintln!("[{:6.1} s] {s}", t0.elapsed().as_secs_f64());
    let dom = Domains::load(&a.data, &mut |s| log(s))?;
    let mut fitter = Fitter::new(BodyModel::default_body()?, Prior::default_prior(&Device::Cpu)?)?;
    fitter.scorer = Some(Scorer::load(&a.scorer, &Device::Cpu)?);
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let clean = domain_samples(&fitter.body, &dom.cmu_train, a.samples, &SynthConfig::default(), a.seed ^ 0xC1EA)?;
    let mut corrupted = clean.clone();
    let kinds = corrupt_samples(&fitter.body, &mut corrupted, a.corrupt, a.seed ^ 0xBAD)?;
    let x: Vec<f32> = corrupted.iter().flat_map(|s| s.x.iter().copied()).collect();
    let scores = score_labels(&fitter, &corrupted, &x)?;
    let keep = keep_mask(&scores, a.drop);
    let stats = clean_stats(&kinds, &keep);
    // Label error against the truth, before and after cleaning (PA-MPJPE, mm).
    let errs = rigfit::learn::tune::hypothesis_errors(&fitter.body, &clean, &x, 1, &[], false)?;
    let mean = |f: &dyn Fn(usize) -> bool| {
        let v: Vec<f64> = (0..errs.len()).filter(|&i| f(i)).map(|i| errs[i][1] as f64).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (err_all, err_kept) = (mean(&|_| true), mean(&|i| keep[i]));
    log(&format!("{} of {} labels corrupted; dropped {}: precision {:.3}, recall {:.3} {:?}; label PA-MPJPE {:.1} -> {:.1} mm after cleaning", stats.corrupted, stats.samples, stats.dropped, stats.precision, stats.recall, stats.recall_by_kind, err_all, err_kept));
    let mut md = format!(
        "# Data cleaning with the HMR-Scorer\n\n{} training labels (cmu training clips, synthetic observations), {} corrupted ({:.0}%: flipped limbs, depth reflections, jitter in turn). The scorer scored every label against its observation; the lowest {:.0}% were dropped.\n\n| dropped | precision | recall | recall: flipped limbs | recall: depth | recall: jitter | label PA-MPJPE all | label PA-MPJPE kept |\n|---|---|---|---|---|---|---|---|\n| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |\n",
        stats.samples, stats.corrupted, 100.0 * a.corrupt, 100.0 * a.drop, stats.dropped, stats.precision, stats.recall,
        stats.recall_by_kind[0].1, stats.recall_by_kind[1].1, stats.recall_by_kind[2].1, err_all, err_kept
    );
    let mut reports = Vec::new();
    let mut val_losses: Vec<(String, f64)> = Vec::new();
    if !a.no_train {
        let cleaned: Vec<_> = corrupted.iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| s.clone()).collect();
        let init = match &a.from_prior {
            Some(p) => Some(Prior::load(p, &Device::Cpu)?),
            None => None,
        };
        let mut cfg = TrainConfig { steps: a.steps, batch: a.batch, seed: a.seed, val_every: 0, checkpoint_every: 0, ..TrainConfig::default() };
        if let Some(p) = &init {
            (cfg.prior, cfg.lr, cfg.warmup) = (p.config.clone(), 1e-4, a.steps / 10);
        }
        if let Some(lr) = a.lr {
            cfg.lr = lr;
        }
        let sets = EvalSets::new(&fitter.body, &dom, a.eval_samples, 7)?;
        let mut efit = Fitter::new(BodyModel::default_body()?, Prior::default_prior(&Device::Cpu)?)?;
        for (name, set) in [("clean", &clean), ("corrupted", &corrupted), ("corrupted then cleaned", &cleaned)] {
            let pb = bar(cfg.steps, a.quiet);
            pb.set_message(name.to_string());
            let work = a.out.join(name.replace(' ', "_"));
            let mut cb = |k: usize, _: usize, l: f64, _: Option<&rigfit::learn::train::ValPoint>| {
                pb.set_position(k as u64);
                pb.set_message(format!("{name}: loss {l:.4}"));
                if a.quiet && k % 250 == 0 {
                    eprintln!("[{:6.1} s] {name}: step {k}, loss {l:.4}", t0.elapsed().as_secs_f64());
                }
                true
            };
            let (prior, rep) = match &init {
                Some(p) => finetune_prior_fixed(&fitter.body, p, set, &dom.cmu_val, &cfg, &work, &Device::Cpu, &mut cb)?,
                None => train_prior_fixed(&fitter.body, set, &dom.cmu_val, &cfg, &work, false, &Device::Cpu, &mut cb)?,
            };
            pb.finish();
            prior.save(&work.join("prior.safetensors"))?;
            efit.prior = prior;
            let r = sets.report(&efit, &format!("{name} ({} labels)", set.len()), 16, true)?;
            let vl = rep.validation.last().map(|v| v.loss).unwrap_or(f64::NAN);
            log(&format!("{name}: trained in {:.0} s; validation eps-MSE {vl:.4}; CMU val hyp. PA-MPJPE {:.1}, refined {:.1}", rep.seconds, r.cmu.hyp_pa_mpjpe, r.cmu.refined_pa_mpjpe));
            val_losses.push((name.to_string(), vl));
            reports.push(r);
        }
        let how = if init.is_some() { "fine-tuned from the given prior" } else { "trained from scratch" };
        md.push_str(&format!("\n## Priors {how} on each set ({} steps, batch {}, lr {:e}, same seed)\n\nValidation eps-MSE (CMU validation clips, fixed t and noise): {}\n\n", a.steps, a.batch, cfg.lr, val_losses.iter().map(|(n, v)| format!("{n} {v:.4}")).collect::<Vec<_>>().join(", ")));
        md.push_str(&rigfit::learn::tune::markdown(&reports));
    }
    println!("{md}");
    rigfit::io::write_atomic(&a.out.join("clean.md"), md.as_bytes())?;
    write_json(&a.out.join("clean.json"), &serde_json::json!({"stats": stats, "label_pa_mpjpe_all": err_all, "label_pa_mpjpe_kept": err_kept, "validation_eps_mse": val_losses, "from_prior": a.from_prior, "reports": reports}))?;
    Ok(())
}
