use candle_core::Device;
use rigfit::body::BodyModel;
use rigfit::diffusion::Rng;
use rigfit::geom::rot::axis_angle_to_matrix;
use rigfit::learn::train::{train_prior, TrainConfig};
fn main() {
    let model = BodyModel::default_body().unwrap();
    let mut rng = Rng::new(1);
    let mut poses = Vec::new();
    for _ in 0..2000 * 24 { let a = [rng.normal() as f32 * 0.2, rng.normal() as f32 * 0.2, rng.normal() as f32 * 0.2]; poses.extend_from_slice(&axis_angle_to_matrix(&a)); }
    let steps: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(30);
    let batch: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(256);
    let out = std::env::args().nth(3);
    let cfg = TrainConfig { steps, batch, val_every: 0, checkpoint_every: 0, val_size: 256, warmup: 10, ..TrainConfig::default() };
    let t = std::time::Instant::now();
    let mut cb = |k: usize, n: usize, l: f64, _v: Option<&rigfit::learn::train::ValPoint>| { if k % 10 == 0 { eprintln!("{k}/{n} loss {l:.4} {:.1} ms/step", t.elapsed().as_secs_f64() * 1000.0 / k as f64); } true };
    let (p, r) = train_prior(&model, &poses[..1500 * 216], &poses[1500 * 216..], &cfg, std::path::Path::new("/tmp/scratch_train"), false, &Device::Cpu, &mut cb).unwrap();
    eprintln!("{:?}", r.validation);
    if let Some(o) = out { p.save(std::path::Path::new(&o)).unwrap(); }
}
