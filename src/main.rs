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
    /// Train models (the default prior).
    #[command(subcommand)]
    Train(TrainCmd),
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
        Cmd::Train(TrainCmd::Prior { data, out, work, steps, batch, lr, seed, resume, hidden, cond, quiet }) => {
            train_prior_cmd(&data, &out, &work, steps, batch, lr, seed, resume, hidden, cond, quiet)
        }
    }
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
            if quiet {
                eprintln!("step {k}: loss {loss:.4}{val_msg}");
            }
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

mod demo {
    //! `rigfit demo`. Until the fitting pipeline lands, the demo poses the embedded default body
    //! through a short walk cycle and writes the meshes and pictures.
    use super::*;

    /// Renders the body seen from the front, turned by `yaw_deg` about the vertical axis.
    pub fn render_png(model: &BodyModel, verts: &[f32], yaw_deg: f32, path: &Path) -> Result<()> {
        let img = rigfit::render::render_body(verts, model.faces(), 512, 640, yaw_deg)?;
        img.save(path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))
    }

    pub fn run(out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let model = BodyModel::default_body()?;
        // A stride: hips, knees, shoulders and elbows (axis-angle, radians; SMPL joint order).
        let mut aa = [[0f32; 3]; NUM_JOINTS];
        aa[1] = [-0.5, 0.0, 0.0]; // left hip forward
        aa[2] = [0.4, 0.0, 0.0]; // right hip back
        aa[4] = [0.3, 0.0, 0.0]; // left knee
        aa[5] = [0.9, 0.0, 0.0]; // right knee
        aa[16] = [0.0, 0.0, -1.2]; // left shoulder down
        aa[17] = [0.0, 0.0, 1.2]; // right shoulder down
        aa[18] = [0.0, -0.6, 0.0]; // left elbow
        aa[19] = [0.0, 0.6, 0.0]; // right elbow
        let posed = pose_body(&model, &[], &aa, [0.0; 3])?;
        write_obj(&out.join("stride.obj"), &posed.vertices, model.faces())?;
        render_png(&model, &posed.vertices, 40.0, &out.join("stride.png"))?;
        let rest = pose_body(&model, &[], &[], [0.0; 3])?;
        write_obj(&out.join("rest.obj"), &rest.vertices, model.faces())?;
        render_png(&model, &rest.vertices, 0.0, &out.join("rest.png"))?;
        println!("rigfit demo: default body ({} vertices, {:.2} m)", model.num_verts(), height(&model));
        println!("wrote {}/{{rest,stride}}.{{obj,png}}", out.display());
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
