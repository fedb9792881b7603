//! The `rigfit` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rigfit::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_JOINTS};
use rigfit::geom::rot::axis_angles_to_matrices;
use rigfit::{Error, Result};

#[derive(Parser)]
#[command(name = "rigfit", version, about = "Fit animated SMPL-style human rigs to 2D keypoints")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the bundled example on the embedded default body (no downloads) and writes the
    /// results to an output folder.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
    },
    /// Inspect or pose a body model.
    #[command(subcommand)]
    Body(BodyCmd),
    /// Train models (the default prior, reward fine-tuning).
    #[command(subcommand)]
    Train(TrainCmd),
    /// Fits the body to 2D keypoints (one image, a video, or several views) and writes .glb,
    /// .usda, the fitted parameters (.json) and optional overlay pictures.
    Fit(Box<FitArgs>),
    /// Data cleaning with the HMR-Scorer (ADHMR): corrupts a fraction of training labels the way
    /// pseudo-ground-truth fits go wrong, scores every label against its observation, drops the
    /// lowest-scoring fraction, and trains priors on the clean, corrupted and cleaned sets.
    Clean(learncmd::CleanArgs),
    /// Measures fits on the held-out validation clips (single frame, noise sweep, calibrated
    /// views, video) against the SMPLify baseline; prints a markdown table.
    Eval {
        /// Folder of BVH clips (the validation clips of the fixed split are used).
        #[arg(long)]
        data: PathBuf,
        /// Prior file (default: the embedded default prior).
        #[arg(long)]
        prior: Option<PathBuf>,
        /// Also write the table (markdown) and the rows (JSON, same name .json) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fewer samples (a quick check).
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Args)]
struct FitArgs {
    /// Keypoint file or folder (OpenPose JSON per frame, COCO annotations, MMPose predictions,
    /// rigfit MediaPipe JSON). Repeat once per view for several cameras of the same moments.
    #[arg(long = "keypoints", required = true)]
    keypoints: Vec<PathBuf>,
    /// Keypoint format (default: detected): openpose, coco, mmpose, mediapipe.
    #[arg(long)]
    format: Option<String>,
    /// Which person (track id) to fit; default: the most confident person per frame.
    #[arg(long)]
    track: Option<i64>,
    /// Image size WxH (pixels), when the keypoint file does not give it and no --image is given.
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    /// The footage: an image, or a folder of frames (sorted by name). Sets the image size and
    /// is the background of the overlays. One per view, in --keypoints order.
    #[arg(long)]
    image: Vec<PathBuf>,
    /// Focal length in pixels (default: ScoreHMR's 5000 px with the principal point at the centre).
    #[arg(long, conflicts_with = "fov")]
    focal: Option<f32>,
    /// Horizontal field of view in degrees (phone footage: about 65-75).
    #[arg(long)]
    fov: Option<f32>,
    /// Calibration JSON: a list of cameras (name, intrinsics {fx, fy, cx, cy}, width, height,
    /// rotation [9] camera-to-world, position [3]; the glTF camera convention), one per view.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Frame rate of the footage.
    #[arg(long, default_value_t = 30.0)]
    fps: f32,
    /// Output folder.
    #[arg(long, default_value = "out/fit")]
    out: PathBuf,
    /// Base name of the output files.
    #[arg(long, default_value = "fit")]
    name: String,
    /// Write overlay pictures (PNG per frame and view).
    #[arg(long)]
    overlay: bool,
    /// Skip the .glb / .usda outputs.
    #[arg(long)]
    no_glb: bool,
    #[arg(long)]
    no_usd: bool,
    /// Hypotheses sampled from the prior per frame.
    #[arg(long, default_value_t = 16)]
    hypotheses: usize,
    /// Only the initial estimate (no ScoreHMR refinement).
    #[arg(long)]
    no_refine: bool,
    /// No temporal smoothness in videos.
    #[arg(long)]
    no_temporal: bool,
    /// Shape coefficients held fixed, comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    betas: Option<Vec<f32>>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Prior file (default: the embedded default prior).
    #[arg(long)]
    prior: Option<PathBuf>,
    /// HMR-Scorer file (rigfit train scorer): picks the initial estimate among the sampled
    /// hypotheses instead of the lowest reprojection error.
    #[arg(long)]
    scorer: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    /// No progress bar or summary.
    #[arg(long)]
    quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("'{s}': expected WxH, e.g. 1920x1080"))?;
    let p = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("'{s}': expected WxH, e.g. 1920x1080"));
    let (w, h) = (p(w)?, p(h)?);
    if w == 0 || h == 0 {
        return Err(format!("'{s}': the size must be positive"));
    }
    Ok((w, h))
}

#[derive(Subcommand)]
enum TrainCmd {
    /// Trains the keypoint-conditioned diffusion prior on mocap (BVH folder, e.g. CMU) seen by
    /// random cameras with detector-like keypoints. Resumable: rerun with --resume.
    Prior {
        /// Folder of BVH clips (CMU MotionBuilder-friendly or the Daz conversion).
        #[arg(long)]
        data: PathBuf,
        /// Where the trained prior is written.
        #[arg(long, default_value = "models/default_prior.safetensors")]
        out: PathBuf,
        /// Working folder for checkpoints and the training report.
        #[arg(long, default_value = "out/train_prior")]
        work: PathBuf,
        #[arg(long, default_value_t = 20000)]
        steps: usize,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Peak learning rate (warm-up, then cosine decay).
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Continue from the checkpoint in --work.
        #[arg(long)]
        resume: bool,
        /// Denoiser hidden width (1024 in ScoreHMR; 512 for the <= 8 MB default).
        #[arg(long, default_value_t = 512)]
        hidden: usize,
        /// Condition size C.
        #[arg(long, default_value_t = 256)]
        cond: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Trains ADHMR's HMR-Scorer (ranks candidate fits against 2D keypoints) on hypotheses
    /// around the truth and from the prior, and measures it (correlation with the true error,
    /// fits picked by reprojection vs by the scorer).
    Scorer(learncmd::ScorerArgs),
    /// Fine-tunes the prior with Diffusion-DPO (ADHMR) on preference pairs: scorer-ranked
    /// samples of 2D-only observations of a new pose domain, and truth-vs-sample pairs of
    /// 3D-labelled data; sweeps beta and the learning rate and reports before/after.
    Dpo(learncmd::DpoArgs),
    /// Fine-tunes a prior by direct reward backpropagation (DrPose / DRaFT-K) on the 2D
    /// projections of the dance clips (cmu-daz/), and evaluates it before and after on held-out
    /// clips of both domains. Writes the prior and report.json / report.md in --work.
    Reward {
        /// The shared mocap folder (holds cmu/ and cmu-daz/).
        #[arg(long)]
        data: PathBuf,
        /// Where the fine-tuned prior is written.
        #[arg(long)]
        out: PathBuf,
        /// Prior to start from (default: the embedded default prior).
        #[arg(long)]
        prior: Option<PathBuf>,
        /// Folder for report.json and report.md.
        #[arg(long, default_value = "out/train_reward")]
        work: PathBuf,
        #[arg(long, default_value_t = 400)]
        steps: usize,
        /// DDIM steps (from the end) that carry gradients; 0 = the whole chain (the shipped
        /// recipe; K = 1 gained about 5%, the whole chain 22-31%, models/REWARD_eval.md).
        #[arg(long, default_value_t = 0)]
        k: usize,
        /// Weight of the KL term (keeps the hypotheses' spread: 1 lost it, 10 keeps 0.62).
        #[arg(long, default_value_t = 10.0)]
        w_kl: f64,
        #[arg(long, default_value_t = 2e-5)]
        lr: f64,
        /// Observations per step and noise seeds per observation.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        seeds: usize,
        /// DDIM step size of the chain from t = 999 (40: 25 network evaluations).
        #[arg(long, default_value_t = 40)]
        ddim_step: u32,
        /// Held-out samples per domain in the evaluation.
        #[arg(long, default_value_t = 128)]
        eval_samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Log a line every 10 steps instead of a progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Args)]
struct ModelArg {
    /// Body model .npz (smplx/SMPL naming, see README "Your own SMPL file"); default: the
    /// embedded license-free body.
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BodyCmd {
    /// Prints a summary of the body model.
    Info {
        #[command(flatten)]
        model: ModelArg,
        /// Machine-readable JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Poses the body and writes the mesh as Wavefront OBJ (and a picture with --png).
    Pose {
        #[command(flatten)]
        model: ModelArg,
        /// Pose file (JSON): {"betas": [..], "axis_angle": [[x,y,z] x 24], "transl": [x,y,z]};
        /// every field is optional (default: rest pose, mean shape, origin).
        #[arg(long)]
        pose: Option<PathBuf>,
        /// Shape coefficients, comma-separated (override the pose file's).
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        betas: Option<Vec<f32>>,
        /// Output OBJ path.
        #[arg(long)]
        obj: PathBuf,
        /// Also render a PNG picture of the posed body.
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

#[derive(serde::Deserialize, Default)]
struct PoseFile {
    #[serde(default)]
    betas: Vec<f32>,
    #[serde(default)]
    axis_angle: Vec<[f32; 3]>,
    #[serde(default)]
    transl: Option<[f32; 3]>,
}

fn load_model(m: &ModelArg) -> Result<BodyModel> {
    match &m.model {
        Some(p) => BodyModel::load(p),
        None => BodyModel::default_body(),
    }
}

/// Rest-pose height (max minus min Y of the template), metres.
fn height(model: &BodyModel) -> f32 {
    let ys = model.arrays().v_template.iter().skip(1).step_by(3);
    let (lo, hi) = ys.fold((f32::MAX, f32::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    hi - lo
}

fn info(model: &BodyModel, json: bool) -> Result<()> {
    let joints = model.rest_joints(&[])?;
    if json {
        let j: Vec<serde_json::Value> = (0..NUM_JOINTS)
            .map(|i| serde_json::json!({"name": JOINT_NAMES[i], "parent": model.parents()[i], "rest": &joints[i * 3..i * 3 + 3]}))
            .collect();
        let v = serde_json::json!({
            "name": model.name(), "vertices": model.num_verts(), "faces": model.faces().len(),
            "betas": model.num_betas(), "pose_correctives": model.has_pose_correctives(),
            "height_m": height(model), "joints": j,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON values serialise"));
        return Ok(());
    }
    println!("body model   {}", model.name());
    println!("vertices     {}", model.num_verts());
    println!("faces        {}", model.faces().len());
    println!("betas        {}", model.num_betas());
    println!("pose blend   {}", if model.has_pose_correctives() { "yes" } else { "none (posedirs zero)" });
    println!("height       {:.3} m (rest pose, mean shape)", height(model));
    println!("joints (rest pose, metres):");
    for i in 0..NUM_JOINTS {
        let p = &joints[i * 3..i * 3 + 3];
        println!("  {:2} {:15} parent {:3}  [{:+.3}, {:+.3}, {:+.3}]", i, JOINT_NAMES[i], model.parents()[i], p[0], p[1], p[2]);
    }
    Ok(())
}

fn write_obj(path: &Path, verts: &[f32], faces: &[[u32; 3]]) -> Result<()> {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(verts.len() * 12 + faces.len() * 16);
    s.push_str("# rigfit posed body\n");
    for p in verts.chunks_exact(3) {
        let _ = writeln!(s, "v {:.6} {:.6} {:.6}", p[0], p[1], p[2]);
    }
    for f in faces {
        let _ = writeln!(s, "f {} {} {}", f[0] + 1, f[1] + 1, f[2] + 1);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

/// Poses `model` with axis-angle rotations `[24, 3]` (fewer: the rest are zero).
fn pose_body(model: &BodyModel, betas: &[f32], aa: &[[f32; 3]], transl: [f32; 3]) -> Result<BodyOutput> {
    if aa.len() > NUM_JOINTS {
        return Err(Error::Input(format!("{} rotations given, the body has 24 joints", aa.len())));
    }
    if betas.len() > model.num_betas() {
        return Err(Error::Input(format!("{} betas given, the model has {}", betas.len(), model.num_betas())));
    }
    let mut flat = vec![0f32; NUM_JOINTS * 3];
    for (i, r) in aa.iter().enumerate() {
        flat[i * 3..i * 3 + 3].copy_from_slice(r);
    }
    let mut rot = vec![0f32; NUM_JOINTS * 9];
    axis_angles_to_matrices(&flat, &mut rot)?;
    let mut out = BodyOutput::default();
    model.forward(betas, &rot, &transl, &mut out)?;
    Ok(out)
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Body(BodyCmd::Info { model, json }) => info(&load_model(&model)?, json),
        Cmd::Body(BodyCmd::Pose { model, pose, betas, obj, png }) => {
            let m = load_model(&model)?;
            let mut p = match pose {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    serde_json::from_str::<PoseFile>(&text)
                        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?
                }
                None => PoseFile::default(),
            };
            if let Some(b) = betas {
                p.betas = b;
            }
            let out = pose_body(&m, &p.betas, &p.axis_angle, p.transl.unwrap_or([0.0; 3]))?;
            write_obj(&obj, &out.vertices, m.faces())?;
            println!("wrote {}", obj.display());
            if let Some(png) = png {
                demo::render_png(&m, &out.vertices, 0.0, &png)?;
                println!("wrote {}", png.display());
            }
            Ok(())
        }
        Cmd::Demo { out } => demo::run(&out),
        Cmd::Fit(a) => fitcmd::run(&a).map(|_| ()),
        Cmd::Eval { data, prior, out, quick, seed } => eval_cmd(&data, prior.as_deref(), out.as_deref(), quick, seed),
        Cmd::Train(TrainCmd::Scorer(a)) => learncmd::train_scorer_cmd(&a),
        Cmd::Train(TrainCmd::Dpo(a)) => learncmd::train_dpo_cmd(&a),
        Cmd::Clean(a) => learncmd::clean_cmd(&a),
        Cmd::Train(TrainCmd::Prior { data, out, work, steps, batch, lr, seed, resume, hidden, cond, quiet }) => {
            train_prior_cmd(&data, &out, &work, steps, batch, lr, seed, resume, hidden, cond, quiet)
        }
        Cmd::Train(TrainCmd::Reward { data, out, prior, work, steps, k, w_kl, lr, batch, seeds, ddim_step, eval_samples, seed, quiet }) => {
            let train = rigfit::learn::reward::RewardConfig { steps, k, w_kl, lr, batch, seeds, ddim_step, seed, ..Default::default() };
            let cfg = rigfit::learn::reward::ExperimentConfig { train, eval_samples, ..Default::default() };
            train_reward_cmd(&data, &out, prior.as_deref(), &work, &cfg, quiet)
        }
    }
}

fn eval_cmd(data: &Path, prior: Option<&Path>, out: Option<&Path>, quick: bool, seed: u64) -> Result<()> {
    use rigfit::learn::eval::{evaluate, markdown, EvalConfig};
    let clips = rigfit::learn::mocap::load_dir(data, 30.0)?;
    let (train, val) = rigfit::learn::train::split_poses(&clips);
    let val_clips: Vec<_> = clips.into_iter().filter(|c| rigfit::learn::mocap::is_validation(&c.name)).collect();
    let prior = match prior {
        Some(p) => rigfit::diffusion::Prior::load(p, &candle_core::Device::Cpu)?,
        None => rigfit::diffusion::Prior::default_prior(&candle_core::Device::Cpu)?,
    };
    let fitter = rigfit::fit::Fitter::new(BodyModel::default_body()?, prior)?;
    let mut cfg = EvalConfig { seed, ..EvalConfig::default() };
    if quick {
        cfg = EvalConfig { single_samples: 32, multiview_scenes: 4, video_windows: 2, window: 16, sweep_samples: 16, noise_levels: vec![0.0, 0.03], seed, ..EvalConfig::default() };
    }
    let t0 = std::time::Instant::now();
    let rows = evaluate(&fitter, &train, &val, &val_clips, &cfg, &mut |s: &str| eprintln!("[{:6.1} s] evaluating: {s}", t0.elapsed().as_secs_f64()))?;
    let table = markdown(&rows);
    println!("{table}");
    if let Some(p) = out {
        rigfit::io::write_atomic(p, table.as_bytes())?;
        let j = p.with_extension("json");
        let doc = serde_json::json!({"config": cfg, "rows": rows});
        rigfit::io::write_atomic(&j, serde_json::to_string_pretty(&doc).expect("rows serialise").as_bytes())?;
        eprintln!("wrote {} and {}", p.display(), j.display());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train_prior_cmd(data: &Path, out: &Path, work: &Path, steps: usize, batch: usize, lr: f64, seed: u64, resume: bool, hidden: usize, cond: usize, quiet: bool) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use rigfit::learn::train::{split_poses, train_prior, TrainConfig};
    let t0 = std::time::Instant::now();
    let clips = rigfit::learn::mocap::load_dir(data, 30.0)?;
    let (train, val) = split_poses(&clips);
    let n_val_clips = clips.iter().filter(|c| rigfit::learn::mocap::is_validation(&c.name)).count();
    eprintln!(
        "{} clips ({} validation): {} training and {} validation poses at 30 fps, loaded in {:.1} s",
        clips.len(), n_val_clips, train.len() / 216, val.len() / 216, t0.elapsed().as_secs_f64()
    );
    let mut cfg = TrainConfig { steps, batch, lr, seed, ..TrainConfig::default() };
    cfg.prior.denoiser.hidden = hidden;
    cfg.prior.denoiser.cond_dim = cond;
    let command: Vec<String> = std::env::args().collect();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(steps as u64) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}").expect("template").progress_chars("=> "));
    let mut val_msg = String::new();
    let mut cb = |k: usize, _n: usize, loss: f64, v: Option<&rigfit::learn::train::ValPoint>| {
        if let Some(v) = v {
            val_msg = format!(" | val {:.4} (null {:.4})", v.loss, v.loss_null);
        }
        if quiet && (k % 100 == 0 || v.is_some()) {
            eprintln!("step {k}: loss {loss:.4}{val_msg} ({:.0} s)", t0.elapsed().as_secs_f64());
        }
        bar.set_position(k as u64);
        bar.set_message(format!("loss {loss:.4}{val_msg}"));
        true
    };
    let (mut prior, report) = train_prior(&BodyModel::default_body()?, &train, &val, &cfg, work, resume, &candle_core::Device::Cpu, &mut cb)?;
    bar.finish();
    prior.config.provenance = serde_json::json!({
        "command": command.join(" "),
        "data": data.display().to_string(),
        "clips": clips.len(), "validation_clips": n_val_clips,
        "train_poses": train.len() / 216, "validation_poses": val.len() / 216,
        "train": cfg, "report": report,
    });
    prior.save(out)?;
    let rep = work.join("report.json");
    std::fs::write(&rep, serde_json::to_string_pretty(&report).expect("report serialises")).map_err(|e| Error::io(&rep, e))?;
    let last = report.validation.last();
    eprintln!(
        "wrote {} ({:.1} MB) after {} steps in {:.0} s; validation eps-MSE {:.4} (null condition {:.4})",
        out.display(), std::fs::metadata(out).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0), report.steps, report.seconds,
        last.map(|v| v.loss).unwrap_or(f64::NAN), last.map(|v| v.loss_null).unwrap_or(f64::NAN)
    );
    Ok(())
}

fn train_reward_cmd(data: &Path, out: &Path, prior: Option<&Path>, work: &Path, cfg: &rigfit::learn::reward::ExperimentConfig, quiet: bool) -> Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use rigfit::learn::reward::{experiment_markdown, run_experiment, RewardStep};
    let base = match prior {
        Some(p) => rigfit::diffusion::Prior::load(p, &candle_core::Device::Cpu)?,
        None => rigfit::diffusion::Prior::default_prior(&candle_core::Device::Cpu)?,
    };
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    let t0 = std::time::Instant::now();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(cfg.train.steps as u64) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}").expect("template").progress_chars("=> "));
    let mut log = |s: &str| bar.suspend(|| eprintln!("[{:6.1} s] {s}", t0.elapsed().as_secs_f64()));
    let mut step = |s: &RewardStep| {
        if quiet && (s.step % 10 == 0 || s.step + 1 == cfg.train.steps) {
            eprintln!("step {}: reward {:.1} kl {:.5} |g| {:.3} lr {:.1e} ({:.0} s)", s.step, s.reward, s.kl, s.grad_norm, s.lr, t0.elapsed().as_secs_f64());
        }
        bar.set_position(s.step as u64 + 1);
        bar.set_message(format!("reward {:.1} kl {:.5}", s.reward, s.kl));
        true
    };
    let (mut tuned, report) = run_experiment(data, &base, cfg, &mut log, &mut step)?;
    bar.finish();
    let command: Vec<String> = std::env::args().collect();
    tuned.config.provenance = serde_json::json!({
        "command": command.join(" "), "data": data.display().to_string(), "base": base.config.provenance,
        "reward": cfg, "seconds": report.train.seconds,
    });
    tuned.save(out)?;
    let md = experiment_markdown(&report);
    let (j, m) = (work.join("report.json"), work.join("report.md"));
    rigfit::io::write_atomic(&j, serde_json::to_string_pretty(&report).expect("report serialises").as_bytes())?;
    rigfit::io::write_atomic(&m, md.as_bytes())?;
    println!("{md}");
    eprintln!("wrote {}, {} and {}", out.display(), j.display(), m.display());
    Ok(())
}

mod fitcmd;
mod learncmd;

mod demo {
    //! `rigfit demo`: fits the bundled example (examples/data/, made by
    //! `cargo run --example make_demo_data`: a procedural walk of the default body seen by one
    //! camera and by three calibrated cameras, OpenPose keypoints with noise and missing joints)
    //! with the embedded default body and prior, writes .glb, .usda, .json and overlays, and
    //! reports the accuracy against the known truth.
    use super::*;
    use rigfit::geom::metrics::{mpjpe, pa_mpjpe, RootAlign};
    use rigfit::motion::Motion;

    /// Renders the body seen from the front, turned by `yaw_deg` about the vertical axis.
    pub fn render_png(model: &BodyModel, verts: &[f32], yaw_deg: f32, path: &Path) -> Result<()> {
        let img = rigfit::render::render_body(verts, model.faces(), 512, 640, yaw_deg)?;
        img.save(path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))
    }

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
    }

    fn report(name: &str, fitter: &rigfit::fit::Fitter, fit: &Motion, truth: &Motion) -> Result<()> {
        let a = fit.joints(&fitter.body)?;
        let b = truth.joints(&fitter.body)?;
        let m = mpjpe(&a, &b, NUM_JOINTS, &RootAlign::Joint(0))?.mean * 1000.0;
        let pa = pa_mpjpe(&a, &b, NUM_JOINTS)?.mean * 1000.0;
        println!("{name}: MPJPE {m:.1} mm, PA-MPJPE {pa:.1} mm against the known truth (24 joints)");
        Ok(())
    }

    pub fn run(out: &Path) -> Result<()> {
        let data = data_dir();
        if !data.join("walk_1view").exists() {
            return Err(Error::Input(format!("{}: the bundled example is missing (run `cargo run --example make_demo_data`)", data.display())));
        }
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let out_s = out.display().to_string();
        let one = data.join("walk_1view/openpose").display().to_string();
        println!("rigfit demo 1/2: a 30-frame walk seen by one phone camera (70 degree field of view)");
        let cli = Cli::try_parse_from(["rigfit", "fit", "--keypoints", &one, "--size", "1920x1080", "--fov", "70", "--out", &out_s, "--name", "walk_1view", "--overlay"])
            .map_err(|e| Error::Input(e.to_string()))?;
        let Cmd::Fit(a) = cli.cmd else { unreachable!("parsed a fit command") };
        let (res, fitter) = fitcmd::run(&a)?;
        report("walk_1view", &fitter, &res.motion, &Motion::load_json(&data.join("walk_1view/truth.json"))?)?;
        println!("rigfit demo 2/2: the same walk seen by three calibrated cameras");
        let d3 = data.join("walk_3views");
        let views: Vec<String> = ["front", "side", "back"].iter().map(|v| d3.join(v).display().to_string()).collect();
        let calib = d3.join("calibration.json").display().to_string();
        let mut argv = vec!["rigfit", "fit"];
        for v in &views {
            argv.extend(["--keypoints", v.as_str()]);
        }
        argv.extend(["--calibration", &calib, "--out", &out_s, "--name", "walk_3views", "--overlay"]);
        let cli = Cli::try_parse_from(argv).map_err(|e| Error::Input(e.to_string()))?;
        let Cmd::Fit(a) = cli.cmd else { unreachable!("parsed a fit command") };
        let (res, fitter) = fitcmd::run(&a)?;
        report("walk_3views", &fitter, &res.motion, &Motion::load_json(&d3.join("truth.json"))?)?;
        println!("open {out_s}/walk_1view.glb in Blender (File > Import > glTF) or any glTF viewer; overlays in {out_s}/*_overlay/");
        Ok(())
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
