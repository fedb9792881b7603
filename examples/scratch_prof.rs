use candle_core::{DType, Device, Tensor};
use rigfit::body::BodyModel;
use rigfit::diffusion::{Prior, PriorConfig, Rng, Schedule};
use rigfit::learn::synth::{Generator, SynthConfig};
use rigfit::geom::rot::axis_angle_to_matrix;
fn main() {
    let dev = Device::Cpu;
    let model = BodyModel::default_body().unwrap();
    let mut rng = Rng::new(1);
    let mut poses = Vec::new();
    for _ in 0..256 * 24 { let a = [rng.normal() as f32 * 0.3, rng.normal() as f32 * 0.3, rng.normal() as f32 * 0.3]; poses.extend_from_slice(&axis_angle_to_matrix(&a)); }
    let refs: Vec<&[f32]> = poses.chunks_exact(216).collect();
    let mut gen = Generator::new(&model, SynthConfig::default());
    let t = std::time::Instant::now();
    for _ in 0..5 { gen.generate(&refs, &mut rng).unwrap(); }
    eprintln!("generate 256: {:.1} ms", t.elapsed().as_secs_f64() * 200.0);
    let samples = gen.generate(&refs, &mut rng).unwrap();
    let (x0, feats) = rigfit::learn::train::batch_tensors(&samples, &dev).unwrap();
    let (prior, _e, _d) = Prior::init(&PriorConfig::default(), 0, DType::F32, &dev).unwrap();
    let sched = Schedule::scorehmr();
    let tt = rng.timesteps(256, 1000, &dev).unwrap();
    let noise = rng.normal_tensor(&[256, 144], DType::F32, &dev).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let c = prior.encode(&feats).unwrap();
        let x_t = sched.q_sample(&x0, &tt, &noise).unwrap();
        let eps = prior.denoiser.forward(&x_t, &tt, Some(&c)).unwrap();
        let loss = eps.sub(&noise).unwrap().sqr().unwrap().mean_all().unwrap();
        let _l = loss.to_scalar::<f32>().unwrap();
        let f = t.elapsed().as_secs_f64() * 1000.0;
        let g = loss.backward().unwrap();
        let b = t.elapsed().as_secs_f64() * 1000.0 - f;
        eprintln!("fwd {f:.1} ms bwd {b:.1} ms ({} grads)", g.get_ids().count());
    }
    let _ = Tensor::zeros(1, DType::F32, &dev);
}
