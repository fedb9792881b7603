//! `rigfit fit`: keypoint files -> fitted motion -> .glb, .usda, .json, overlays.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rigfit::diffusion::Prior;
use rigfit::fit::{FitInput, FitOptions, FitResult, FitView, Fitter, Progress};
use rigfit::geom::camera::{Pinhole, SCOREHMR_FOCAL};
use rigfit::io::keypoints::{self, Format};
use rigfit::motion::MotionCamera;
use rigfit::{Error, Result};

use super::{load_model, FitArgs};

/// The footage of one view: nothing, one image, or one image per frame.
enum Footage {
    None,
    Single(PathBuf),
    Frames(Vec<PathBuf>),
}

impl Footage {
    fn open(path: Option<&PathBuf>) -> Result<Self> {
        let Some(p) = path else { return Ok(Footage::None) };
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|x| x.to_str()).map(|x| x.to_ascii_lowercase()).as_deref(), Some("png" | "jpg" | "jpeg")))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Input(format!("{}: no .png or .jpg frames in the folder", p.display())));
            }
            Ok(Footage::Frames(files))
        } else if p.exists() {
            Ok(Footage::Single(p.clone()))
        } else {
            Err(Error::Input(format!("{}: no such image or folder", p.display())))
        }
    }

    fn frame_path(&self, f: usize) -> Option<&Path> {
        match self {
            Footage::None => None,
            Footage::Single(p) => Some(p),
            Footage::Frames(v) => v.get(f).map(|p| p.as_path()),
        }
    }

    fn load(&self, f: usize) -> Result<Option<image::RgbImage>> {
        match self.frame_path(f) {
            None => Ok(None),
            Some(p) => Ok(Some(image::open(p).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?.to_rgb8())),
        }
    }

    fn size(&self) -> Result<Option<(u32, u32)>> {
        match self.frame_path(0) {
            None => Ok(None),
            Some(p) => image::image_dimensions(p).map(Some).map_err(|e| Error::Image(format!("{}: {e}", p.display()))),
        }
    }
}

/// Runs the fit; returns the result and the fitter (for the demo's accuracy report).
pub fn run(a: &FitArgs) -> Result<(FitResult, Fitter)> {
    let t0 = std::time::Instant::now();
    let format = match &a.format {
        Some(f) => Some(f.parse::<Format>().map_err(|e| Error::Input(format!("--format {f}: {e}")))?),
        None => None,
    };
    let v = a.keypoints.len();
    if !a.image.is_empty() && a.image.len() != v {
        return Err(Error::Input(format!("{} --image for {v} --keypoints: give one per view (or none)", a.image.len())));
    }
    let calib: Option<Vec<MotionCamera>> = match &a.calibration {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let cams: Vec<MotionCamera> = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: expected a JSON list of cameras (name, intrinsics, width, height, rotation, position): {e}", p.display())))?;
            if cams.len() != v {
                return Err(Error::Input(format!("{}: {} cameras for {v} views", p.display(), cams.len())));
            }
            Some(cams)
        }
        None => None,
    };
    let mut views = Vec::with_capacity(v);
    let mut tracks = Vec::with_capacity(v);
    let mut footage = Vec::with_capacity(v);
    let mut fps = a.fps;
    for (i, path) in a.keypoints.iter().enumerate() {
        let foot = Footage::open(a.image.get(i))?;
        let img_size = foot.size()?;
        let seq = keypoints::read(path, format, img_size.or(a.size))?;
        if let Some(f) = seq.fps {
            fps = f;
        }
        let size = match (&calib, img_size.or(seq.image_size).or(a.size)) {
            (Some(c), _) => (c[i].width, c[i].height),
            (None, Some(s)) => s,
            (None, None) => return Err(Error::Input(format!("{}: the image size is unknown: pass --size WxH or --image", path.display()))),
        };
        let (name, camera, pose) = match &calib {
            Some(c) => (c[i].name.clone(), Pinhole::from(c[i].intrinsics), Some(c[i].pose(0))),
            None => {
                let cam = match (a.focal, a.fov) {
                    (Some(f), _) => Pinhole::from_focal(f, size.0 as f32, size.1 as f32)?,
                    (None, Some(fov)) => Pinhole::from_fov(fov, size.0 as f32, size.1 as f32)?,
                    (None, None) => Pinhole::from_focal(SCOREHMR_FOCAL, size.0 as f32, size.1 as f32)?,
                };
                (if v == 1 { "camera".to_string() } else { format!("view_{i}") }, cam, None)
            }
        };
        tracks.push(seq.track(a.track).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?);
        views.push(FitView { name, camera, width: size.0, height: size.1, pose });
        footage.push(foot);
    }
    let frames = tracks.iter().map(|t| t.len()).max().unwrap_or(0);
    let keypoints: Vec<Vec<Option<Vec<f32>>>> = (0..frames)
        .map(|f| tracks.iter().map(|t| t.get(f).copied().flatten().map(|k| k.iter().flatten().copied().collect())).collect())
        .collect();
    let input = FitInput { keypoints, views, fps };
    let model = load_model(&a.model)?;
    let prior = match &a.prior {
        Some(p) => Prior::load(p, &candle_core::Device::Cpu)?,
        None => Prior::default_prior(&candle_core::Device::Cpu)?,
    };
    let mut fitter = Fitter::new(model, prior)?;
    if let Some(p) = &a.scorer {
        fitter.scorer = Some(rigfit::learn::scorer::Scorer::load(p, &candle_core::Device::Cpu)?);
    }
    let opts = FitOptions {
        hypotheses: a.hypotheses,
        refine: !a.no_refine,
        temporal: !a.no_temporal,
        betas: a.betas.clone().unwrap_or_default(),
        seed: a.seed,
        ..FitOptions::default()
    };
    let bar = if a.quiet || a.json { ProgressBar::hidden() } else { ProgressBar::new(1) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} {msg:22} [{bar:30}] {percent:>3}% eta {eta}").expect("template").progress_chars("=> "));
    let mut cb = |p: &Progress| {
        bar.set_message(p.stage.to_string());
        bar.set_length(p.total.max(1) as u64);
        bar.set_position(p.done as u64);
        true
    };
    let res = fitter.fit(&input, &opts, Some(&mut cb))?;
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let mut written = Vec::new();
    let base = a.out.join(&a.name);
    if !a.no_glb {
        let p = base.with_extension("glb");
        rigfit::export::gltf::write_glb(&p, &fitter.body, &res.motion)?;
        written.push(p);
    }
    if !a.no_usd {
        let p = base.with_extension("usda");
        rigfit::export::usd::write_usda(&p, &fitter.body, &res.motion)?;
        written.push(p);
    }
    let p = base.with_extension("json");
    save_result(&p, &res, &input)?;
    written.push(p);
    if a.overlay {
        let dir = a.out.join(format!("{}_overlay", a.name));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        for (vi, view) in input.views.iter().enumerate() {
            let ci = res.motion.cameras.iter().position(|c| c.name == view.name).expect("every view has a camera");
            for f in 0..frames {
                let bg = footage[vi].load(f)?;
                let kp = input.keypoints[f][vi].as_deref();
                let img = rigfit::export::overlay::overlay(&fitter.body, &res.motion, ci, f, bg.as_ref(), kp)?;
                let p = dir.join(format!("{}_{:05}.png", view.name, f));
                img.save(&p).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?;
            }
        }
        written.push(dir);
    }
    let summary = serde_json::json!({
        "frames": frames,
        "views": input.views.len(),
        "mean_reprojection_px": finite(res.mean_reprojection_px()),
        "initial_mean_reprojection_px": finite(rigfit::fit::mean_finite(&res.init_reprojection_px)),
        "fit_seconds": res.seconds,
        "total_seconds": t0.elapsed().as_secs_f64(),
        "outputs": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("summary serialises"));
    } else if !a.quiet {
        eprintln!(
            "fitted {frames} frame(s) x {} view(s) in {:.1} s: mean reprojection error {:.1} px (initial estimate {:.1} px)",
            input.views.len(),
            res.seconds,
            res.mean_reprojection_px(),
            rigfit::fit::mean_finite(&res.init_reprojection_px)
        );
        for p in &written {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok((res, fitter))
}

fn finite(x: f32) -> serde_json::Value {
    if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null }
}

/// The fitted parameters per frame: the motion plus the per-frame, per-view reprojection errors.
fn save_result(path: &Path, res: &FitResult, input: &FitInput) -> Result<()> {
    let v = input.views.len();
    let frames: Vec<serde_json::Value> = (0..res.motion.num_frames())
        .map(|f| {
            serde_json::json!({
                "frame": f,
                "time": res.motion.time(f),
                "rotations": res.motion.frame_rotations(f),
                "translation": res.motion.translations[f],
                "reprojection_px": (0..v).map(|vi| finite(res.reprojection_px[f * v + vi])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "format": "rigfit.fit/1",
        "conventions": "metres, seconds, Y-up world; rotations are local, row-major 3x3, SMPL joint order (joint 0 = global orientation); translation is SMPL transl; cameras are camera-to-world, looking down -Z (glTF/USD)",
        "fps": res.motion.fps,
        "betas": res.motion.betas,
        "cameras": res.motion.cameras,
        "mean_reprojection_px": finite(res.mean_reprojection_px()),
        "frames": frames,
    });
    let s = serde_json::to_string_pretty(&doc).map_err(|e| Error::Input(e.to_string()))?;
    rigfit::io::write_atomic(path, s.as_bytes())
}
