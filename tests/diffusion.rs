//! Tests of `rigfit::diffusion`: the cosine schedule against the official buffers, the
//! denoiser against a PyTorch float64 run of ScoreHMR's `FC` (tools/make_denoiser_fixtures.py),
//! the official-size layout, checkpoint I/O, the null condition, every parameter's gradient
//! against central finite differences in f64, and a short deterministic training run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use rigfit::diffusion::{
    sinusoidal_embedding, timestep_full, timestep_tensor, training_loss, training_loss_masked,
    training_loss_per_sample, Coef, Denoiser, DenoiserConfig, NullCond, Rng, Schedule,
};
use rigfit::Error;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Array `name` of an npz as f64 values and its shape.
fn npz(path: &Path, name: &str) -> (Vec<f64>, Vec<usize>) {
    let t = Tensor::read_npz_by_name(path, &[name])
        .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()))
        .remove(0);
    let shape = t.dims().to_vec();
    (
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        shape,
    )
}

fn io() -> PathBuf {
    fixture("denoiser_small_io.npz")
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rigfit_diffusion_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vec2(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.to_dtype(DType::F64)
        .unwrap()
        .sub(&b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Schedule

#[test]
fn schedule_pinned_values() {
    let s = Schedule::scorehmr();
    assert_eq!(s.num_timesteps(), 1000);
    // reference/scorehmr.md section 2 (computed from the official formula).
    for (t, want) in [
        (0, 0.99995872),
        (2, 0.99986158),
        (10, 0.99927890),
        (48, 0.99228509),
        (50, 0.99172468),
        (100, 0.97157568),
        (999, 2.428767e-9),
    ] {
        let got = s.alpha_bar(t) as f64;
        assert!(
            ((got - want) / want).abs() < 1e-6,
            "abar_{t} = {got}, want {want}"
        );
    }
    // The last beta is clipped to 0.999: abar_999 = abar_998 * 0.001.
    assert!((s.alpha_bar_f64(999) / s.alpha_bar_f64(998) - 0.001).abs() < 1e-12);
    assert!((s.beta(999) - 0.999).abs() < 1e-7);
    for t in 1..1000 {
        assert!(
            s.alpha_bar(t) < s.alpha_bar(t - 1),
            "abar not decreasing at {t}"
        );
    }
}

#[test]
fn schedule_matches_official_buffers() {
    let s = Schedule::scorehmr();
    type Getter<'a> = &'a dyn Fn(usize) -> f32;
    let tables: [(&str, Coef, Getter); 5] = [
        ("alphas_cumprod", Coef::AlphaBar, &|t| s.alpha_bar(t)),
        ("sqrt_alphas_cumprod", Coef::SqrtAlphaBar, &|t| {
            s.sqrt_alpha_bar(t)
        }),
        (
            "sqrt_one_minus_alphas_cumprod",
            Coef::SqrtOneMinusAlphaBar,
            &|t| s.sqrt_one_minus_alpha_bar(t),
        ),
        ("sqrt_recip_alphas_cumprod", Coef::SqrtRecipAlphaBar, &|t| {
            s.sqrt_recip_alpha_bar(t)
        }),
        (
            "sqrt_recipm1_alphas_cumprod",
            Coef::SqrtRecipm1AlphaBar,
            &|t| s.sqrt_recipm1_alpha_bar(t),
        ),
    ];
    let all_t: Vec<u32> = (0..1000).collect();
    let tt = timestep_tensor(&all_t, &Device::Cpu).unwrap();
    let like = Tensor::zeros((1000, 3), DType::F32, &Device::Cpu).unwrap();
    for (name, coef, get) in tables {
        let (want, shape) = npz(&io(), name);
        assert_eq!(shape, vec![1000]);
        let mut max_ulp = 0i64;
        for (t, &w) in want.iter().enumerate() {
            let (g, w) = (get(t), w as f32);
            let ulp = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            max_ulp = max_ulp.max(ulp);
        }
        // f64 libm vs torch's cos/sqrt can differ in the last f64 bit, which may flip an f32
        // rounding: at most 1 ulp.
        assert!(
            max_ulp <= 1,
            "{name}: {max_ulp} ulp from the official buffer"
        );
        let c = s.coef(coef, &tt, &like).unwrap();
        assert_eq!(c.dims(), &[1000, 1]);
        let c = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (0..1000).all(|t| c[t] == get(t)),
            "{name}: tensor lookup differs"
        );
    }
}

#[test]
fn schedule_slice_and_tensor_ops_agree() {
    let s = Schedule::scorehmr();
    let dev = Device::Cpu;
    let mut rng = Rng::new(3);
    let (b, p) = (4, 5);
    let ts = [0u32, 2, 50, 999];
    let tn = [2u32, 0, 48, 998];
    let x0 = rng.normal_tensor(&[b, p], DType::F32, &dev).unwrap();
    let eps = rng.normal_tensor(&[b, p], DType::F32, &dev).unwrap();
    let t = timestep_tensor(&ts, &dev).unwrap();
    let t_next = timestep_tensor(&tn, &dev).unwrap();

    let xt = s.q_sample(&x0, &t, &eps).unwrap();
    let x0b = s.x0_from_eps(&xt, &t, &eps).unwrap();
    let epsb = s.eps_from_x0(&xt, &t, &x0).unwrap();
    let step = s.ddim_step(&x0, &eps, &t_next).unwrap();
    let (x0v, epsv, xtv, x0bv, stepv) = (vec2(&x0), vec2(&eps), vec2(&xt), vec2(&x0b), vec2(&step));
    for i in 0..b {
        let f = |v: &Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (x0s, es, xts) = (f(&x0v[i]), f(&epsv[i]), f(&xtv[i]));
        let ti = ts[i] as usize;
        assert_eq!(s.q_sample_slice(&x0s, ti, &es).unwrap(), f(&xtv[i]));
        assert_eq!(s.x0_from_eps_slice(&xts, ti, &es).unwrap(), f(&x0bv[i]));
        assert_eq!(
            s.ddim_step_slice(&x0s, &es, tn[i] as usize).unwrap(),
            f(&stepv[i])
        );
        // x0 round trip through q_sample (loses precision only where abar_t is tiny).
        let tol = if ti == 999 { 1e-1 } else { 1e-4 };
        for j in 0..p {
            assert!((x0bv[i][j] - x0v[i][j]).abs() < tol, "x0 round trip t={ti}");
        }
        let e2 = s.eps_from_x0_slice(&xts, ti, &x0s).unwrap();
        for j in 0..p {
            let tol = if ti == 0 { 2e-2 } else { 1e-4 };
            assert!(
                (e2[j] as f64 - epsv[i][j]).abs() < tol,
                "eps round trip t={ti}"
            );
            assert!((vec2(&epsb)[i][j] - e2[j] as f64).abs() < 1e-6);
        }
        // The DDIM step is the official f32 arithmetic: sqrt of the f32 abar.
        let a = s.alpha_bar(tn[i] as usize);
        let want = x0s[0] * a.sqrt() + es[0] * (1.0 - a).sqrt();
        assert_eq!(stepv[i][0] as f32, want);
    }
    // A scalar timestep is shared by the batch.
    let t50 = Tensor::new(50u32, &dev).unwrap();
    let a = s.x0_from_eps(&xt, &t50, &eps).unwrap();
    let b50 = s
        .x0_from_eps(&xt, &timestep_full(50, b, &dev).unwrap(), &eps)
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b50), 0.0);
    // Float timesteps holding integers work; the others are errors.
    let tf = Tensor::new(&[0f32, 2., 50., 999.], &dev).unwrap();
    assert_eq!(max_abs_diff(&s.q_sample(&x0, &tf, &eps).unwrap(), &xt), 0.0);
    for bad in [
        Tensor::new(&[0f32, 2.5, 50., 999.], &dev).unwrap(),
        Tensor::new(&[0u32, 2, 50, 1000], &dev).unwrap(),
        Tensor::new(&[0u32, 2, 50], &dev).unwrap(),
        Tensor::new(&[[0u32, 2], [50, 9]], &dev).unwrap(),
    ] {
        assert!(
            matches!(s.q_sample(&x0, &bad, &eps), Err(Error::Input(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        s.x0_from_eps_slice(&[1.0], 1000, &[1.0]),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        s.ddim_step_slice(&[1.0, 2.0], &[1.0], 0),
        Err(Error::Input(_))
    ));
    let wrong = Tensor::zeros((b, p + 1), DType::F32, &dev).unwrap();
    assert!(matches!(s.ddim_step(&x0, &wrong, &t), Err(Error::Input(_))));
    assert!(Schedule::cosine(0).is_err());
    assert!(Schedule::from_betas(&[0.1, 1.0]).is_err());
}

#[test]
fn x0_from_eps_gradient_is_the_guidance_factor() {
    // ScoreHMR's guidance gradient: d x0_hat / d x_t = sqrt(1 / abar_t) (eps held constant).
    let s = Schedule::scorehmr();
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::ones((2, 3), DType::F32, &dev).unwrap()).unwrap();
    let eps = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
    let t = timestep_tensor(&[10, 50], &dev).unwrap();
    let g = s
        .x0_from_eps(x.as_tensor(), &t, &eps)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = vec2(g.get(x.as_tensor()).unwrap());
    for (i, ti) in [10usize, 50].into_iter().enumerate() {
        for gij in &g[i] {
            assert_eq!(*gij as f32, s.sqrt_recip_alpha_bar(ti));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Denoiser: parity with PyTorch

#[test]
fn time_embedding_matches_pytorch_f64() {
    let (t, _) = npz(&io(), "t");
    for (name, dim) in [("temb", 48usize), ("temb144", 144)] {
        let (want, shape) = npz(&io(), name);
        assert_eq!(shape, vec![t.len(), dim]);
        let got = sinusoidal_embedding(&t, dim);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("{name}: max |emb - torch f64| = {err:.2e}");
        assert!(err < 1e-12, "{name}: {err}");
    }
}

fn small_inputs(dtype: DType) -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let (x, xs) = npz(&io(), "x_t");
    let (c, cs) = npz(&io(), "cond");
    let (t, _) = npz(&io(), "t");
    let x = Tensor::from_vec(x, xs, &dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let c = Tensor::from_vec(c, cs, &dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let t = timestep_tensor(&t.iter().map(|&v| v as u32).collect::<Vec<_>>(), &dev).unwrap();
    (x, t, c)
}

#[test]
fn denoiser_matches_pytorch() {
    let dev = Device::Cpu;
    let path = fixture("denoiser_small.safetensors");
    let (want, ws) = npz(&io(), "eps");
    let want = Tensor::from_vec(want, ws, &dev).unwrap();
    let (want32, ws) = npz(&io(), "eps_torch_f32");
    let want32 = Tensor::from_vec(want32, ws, &dev).unwrap();

    let m = Denoiser::load(&path, &dev).unwrap();
    assert_eq!(
        m.config(),
        &DenoiserConfig {
            pose_dim: 48,
            cond_dim: 64,
            hidden: 128,
            blocks: 3,
            null_cond: NullCond::None
        }
    );
    let (x, t, c) = small_inputs(DType::F32);
    let eps = m.forward(&x, &t, Some(&c)).unwrap();
    assert_eq!(eps.dims(), &[8, 48]);
    let err32 = max_abs_diff(&eps, &want);
    let err_t32 = max_abs_diff(&eps, &want32);

    let m64 = Denoiser::load_with_dtype(&path, &dev, DType::F64).unwrap();
    let (x, t, c) = small_inputs(DType::F64);
    let eps64 = m64.forward(&x, &t, Some(&c)).unwrap();
    let err64 = max_abs_diff(&eps64, &want);
    // f32 timesteps give the same result.
    let tf = t.to_dtype(DType::F32).unwrap();
    assert_eq!(
        max_abs_diff(&m64.forward(&x, &tf, Some(&c)).unwrap(), &eps64),
        0.0
    );

    println!(
        "eps max |rigfit f32 - torch f64| = {err32:.2e}, |rigfit f64 - torch f64| = {err64:.2e}, \
         |rigfit f32 - torch f32 (official numerics)| = {err_t32:.2e}, max |eps| = {:.3}",
        want.abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .max_keepdim(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0]
    );
    assert!(err32 < 1e-5, "f32 eps error {err32}");
    assert!(err64 < 1e-10, "f64 eps error {err64}");
    assert!(err_t32 < 1e-4, "f32 eps vs torch f32 {err_t32}");
}

#[test]
fn load_infers_config_without_json_and_rejects_bad_files() {
    let dev = Device::Cpu;
    let dir = tmp_dir("load");
    let bare = dir.join("bare.safetensors");
    std::fs::copy(fixture("denoiser_small.safetensors"), &bare).unwrap();
    let _ = std::fs::remove_file(dir.join("bare.json"));
    let m = Denoiser::load(&bare, &dev).unwrap();
    assert_eq!(
        m.config(),
        &Denoiser::read_config(fixture("denoiser_small.safetensors")).unwrap()
    );
    let (x, t, c) = small_inputs(DType::F32);
    let ref_m = Denoiser::load(fixture("denoiser_small.safetensors"), &dev).unwrap();
    assert_eq!(
        max_abs_diff(
            &m.forward(&x, &t, Some(&c)).unwrap(),
            &ref_m.forward(&x, &t, Some(&c)).unwrap()
        ),
        0.0
    );

    let tensors = candle_core::safetensors::load(&bare, &dev).unwrap();
    // Unconverted (prefixed) keys.
    let prefixed: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (format!("ema_model.model.{k}"), v.clone()))
        .collect();
    let p = dir.join("prefixed.safetensors");
    candle_core::safetensors::save(&prefixed, &p).unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::MissingKey { .. })
    ));
    // An extra tensor.
    let mut extra = tensors.clone();
    extra.insert(
        "ema_model.betas".into(),
        Tensor::zeros(1000, DType::F32, &dev).unwrap(),
    );
    let p = dir.join("extra.safetensors");
    candle_core::safetensors::save(&extra, &p).unwrap();
    let e = Denoiser::load(&p, &dev).unwrap_err();
    assert!(matches!(e, Error::BadValue { .. }), "{e}");
    // A missing tensor.
    let mut missing = tensors.clone();
    missing.remove("blocks.2.block.linear_layer2.bias");
    let p = dir.join("missing.safetensors");
    candle_core::safetensors::save(&missing, &p).unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::MissingKey { .. })
    ));
    // A wrong shape.
    let mut wrong = tensors.clone();
    wrong.insert(
        "final_mlp.bias".into(),
        Tensor::zeros(47, DType::F32, &dev).unwrap(),
    );
    let p = dir.join("wrong.safetensors");
    candle_core::safetensors::save(&wrong, &p).unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::BadShape { .. })
    ));
    // A config that disagrees with the tensors.
    let p = dir.join("cfg.safetensors");
    candle_core::safetensors::save(&tensors, &p).unwrap();
    std::fs::write(
        dir.join("cfg.json"),
        r#"{"pose_dim":48,"cond_dim":64,"hidden":256,"blocks":3,"null_cond":"none"}"#,
    )
    .unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::BadShape { .. })
    ));
    std::fs::write(dir.join("cfg.json"), "{not json").unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::BadValue { .. })
    ));
    // Not a file / not safetensors.
    assert!(matches!(
        Denoiser::load(dir.join("nope.safetensors"), &dev),
        Err(Error::Io { .. })
    ));
    let p = dir.join("junk.safetensors");
    std::fs::write(&p, b"junk").unwrap();
    assert!(matches!(
        Denoiser::load(&p, &dev),
        Err(Error::BadValue { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn official_layout_and_parameter_count() {
    let cfg = DenoiserConfig::official();
    assert_eq!(cfg.num_params(), 11_307_024); // reference/scorehmr.md 1.2
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("denoiser_official_shapes.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["num_params"].as_u64().unwrap(), 11_307_024);
    let want: Vec<(String, Vec<usize>)> = json["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e[0].as_str().unwrap().to_string();
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name, shape)
        })
        .collect();
    // Same names, shapes and module order as PyTorch's FC(144, 3072, 1024, 3).state_dict().
    assert_eq!(cfg.param_shapes(), want);

    // A real official-size network: same layout, runs, ~11.3 M parameters.
    let dev = Device::Cpu;
    let (m, vm) = Denoiser::init(&cfg, 1, DType::F32, &dev).unwrap();
    let got: Vec<(String, Vec<usize>)> = m
        .named_tensors()
        .into_iter()
        .map(|(k, t)| (k, t.dims().to_vec()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        vm.all_vars().iter().map(|v| v.elem_count()).sum::<usize>(),
        11_307_024
    );
    let x = Tensor::zeros((2, 144), DType::F32, &dev).unwrap();
    let c = Tensor::zeros((2, 3072), DType::F32, &dev).unwrap();
    let t = timestep_tensor(&[0, 50], &dev).unwrap();
    let eps = m.forward(&x, &t, Some(&c)).unwrap();
    assert_eq!(eps.dims(), &[2, 144]);
    // The official model has no null condition.
    assert!(matches!(m.forward(&x, &t, None), Err(Error::Input(_))));

    let d = DenoiserConfig::default();
    assert_eq!(
        (d.pose_dim, d.cond_dim, d.hidden, d.blocks, d.null_cond),
        (144, 256, 512, 3, NullCond::Learned)
    );
    assert_eq!(d.num_params(), 1_799_440);
}

#[test]
fn config_json_round_trip() {
    let c = DenoiserConfig::default();
    let s = serde_json::to_string(&c).unwrap();
    assert_eq!(
        s,
        r#"{"pose_dim":144,"cond_dim":256,"hidden":512,"blocks":3,"null_cond":"learned"}"#
    );
    assert_eq!(serde_json::from_str::<DenoiserConfig>(&s).unwrap(), c);
    let o: DenoiserConfig = serde_json::from_str(
        r#"{"pose_dim":144,"cond_dim":3072,"hidden":1024,"blocks":3,"null_cond":"none"}"#,
    )
    .unwrap();
    assert_eq!(o, DenoiserConfig::official());
    for bad in [5usize, 2, 0] {
        let c = DenoiserConfig {
            pose_dim: bad,
            ..DenoiserConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::Input(_))));
        assert!(Denoiser::init(&c, 0, DType::F32, &Device::Cpu).is_err());
    }
}

fn tiny(null: NullCond) -> DenoiserConfig {
    DenoiserConfig {
        pose_dim: 6,
        cond_dim: 4,
        hidden: 8,
        blocks: 2,
        null_cond: null,
    }
}

#[test]
fn save_load_round_trip_and_trainable_load() {
    let dev = Device::Cpu;
    let dir = tmp_dir("save");
    let (m, vm) = Denoiser::init(&tiny(NullCond::Learned), 7, DType::F32, &dev).unwrap();
    // Give the null vector non-zero values so that the round trip is meaningful.
    let null = Rng::new(1).normal_tensor(&[4], DType::F32, &dev).unwrap();
    vm.data().lock().unwrap()["null_cond"].set(&null).unwrap();
    let p = dir.join("model.safetensors");
    m.save(&p).unwrap();
    assert!(dir.join("model.json").exists());
    let l = Denoiser::load(&p, &dev).unwrap();
    assert_eq!(l.config(), m.config());
    let (lt, lvm) = Denoiser::load_trainable(&p, &dev, DType::F32).unwrap();
    assert_eq!(lvm.all_vars().len(), m.named_tensors().len());
    let mut rng = Rng::new(2);
    let x = rng.normal_tensor(&[3, 6], DType::F32, &dev).unwrap();
    let c = rng.normal_tensor(&[3, 4], DType::F32, &dev).unwrap();
    let t = timestep_tensor(&[0, 10, 999], &dev).unwrap();
    for cond in [Some(&c), None] {
        let a = m.forward(&x, &t, cond).unwrap();
        assert_eq!(max_abs_diff(&a, &l.forward(&x, &t, cond).unwrap()), 0.0);
        assert_eq!(max_abs_diff(&a, &lt.forward(&x, &t, cond).unwrap()), 0.0);
    }
    // Without the json, a file with `null_cond` loads as Learned.
    std::fs::remove_file(dir.join("model.json")).unwrap();
    assert_eq!(
        Denoiser::read_config(&p).unwrap().null_cond,
        NullCond::Learned
    );
    // VarMap::save writes the same names, so it loads too.
    let p2 = dir.join("varmap.safetensors");
    vm.save(&p2).unwrap();
    let l2 = Denoiser::load(&p2, &dev).unwrap();
    assert_eq!(
        max_abs_diff(
            &m.forward(&x, &t, Some(&c)).unwrap(),
            &l2.forward(&x, &t, Some(&c)).unwrap()
        ),
        0.0
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn null_condition_and_dropout_mask() {
    let dev = Device::Cpu;
    let mut rng = Rng::new(5);
    let x = rng.normal_tensor(&[4, 6], DType::F32, &dev).unwrap();
    let c = rng.normal_tensor(&[4, 4], DType::F32, &dev).unwrap();
    let t = timestep_tensor(&[1, 20, 300, 999], &dev).unwrap();
    let mask = Tensor::new(&[1u8, 0, 1, 0], &dev).unwrap();

    let (m, vm) = Denoiser::init(&tiny(NullCond::Learned), 3, DType::F32, &dev).unwrap();
    let null = rng.normal_tensor(&[4], DType::F32, &dev).unwrap();
    vm.data().lock().unwrap()["null_cond"].set(&null).unwrap();
    let null_b = null
        .unsqueeze(0)
        .unwrap()
        .broadcast_as((4, 4))
        .unwrap()
        .contiguous()
        .unwrap();
    let with_null = m.forward(&x, &t, None).unwrap();
    assert!(max_abs_diff(&with_null, &m.forward(&x, &t, Some(&null_b)).unwrap()) < 1e-6);
    let with_c = m.forward(&x, &t, Some(&c)).unwrap();
    let masked = m.forward_masked(&x, &t, &c, &mask).unwrap();
    let (wn, wc, mk) = (vec2(&with_null), vec2(&with_c), vec2(&masked));
    for i in 0..4 {
        let want = if i % 2 == 0 { &wn[i] } else { &wc[i] };
        for j in 0..6 {
            assert!((mk[i][j] - want[j]).abs() < 1e-6);
        }
    }
    // A shared condition [C] or [1, C] is broadcast.
    let c0 = c.narrow(0, 0, 1).unwrap();
    let a = m.forward(&x, &t, Some(&c0)).unwrap();
    let b = m.forward(&x, &t, Some(&c0.squeeze(0).unwrap())).unwrap();
    let full = m
        .forward(
            &x,
            &t,
            Some(&c0.broadcast_as((4, 4)).unwrap().contiguous().unwrap()),
        )
        .unwrap();
    assert_eq!(max_abs_diff(&a, &full), 0.0);
    assert_eq!(max_abs_diff(&b, &full), 0.0);

    let (mz, _) = Denoiser::init(&tiny(NullCond::Zero), 3, DType::F32, &dev).unwrap();
    let zeros = Tensor::zeros((4, 4), DType::F32, &dev).unwrap();
    assert_eq!(
        max_abs_diff(
            &mz.forward(&x, &t, None).unwrap(),
            &mz.forward(&x, &t, Some(&zeros)).unwrap()
        ),
        0.0
    );
    let mk = vec2(&mz.forward_masked(&x, &t, &c, &mask).unwrap());
    let wz = vec2(&mz.forward(&x, &t, None).unwrap());
    assert!((0..6).all(|j| (mk[0][j] - wz[0][j]).abs() < 1e-6));

    let (mn, _) = Denoiser::init(&tiny(NullCond::None), 3, DType::F32, &dev).unwrap();
    assert!(matches!(mn.forward(&x, &t, None), Err(Error::Input(_))));
    assert!(matches!(
        mn.forward_masked(&x, &t, &c, &mask),
        Err(Error::Input(_))
    ));

    // Input validation.
    let bad_x = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
    assert!(matches!(
        m.forward(&bad_x, &t, Some(&c)),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        m.forward(&x.to_dtype(DType::F64).unwrap(), &t, Some(&c)),
        Err(Error::Input(_))
    ));
    let bad_c = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
    assert!(matches!(
        m.forward(&x, &t, Some(&bad_c)),
        Err(Error::Input(_))
    ));
    let bad_t = timestep_tensor(&[1, 2], &dev).unwrap();
    assert!(matches!(
        m.forward(&x, &bad_t, Some(&c)),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        m.forward_masked(&x, &t, &c, &bad_t),
        Err(Error::Input(_))
    ));

    // An unconditional model (C = 0) ignores the condition.
    let cfg = DenoiserConfig {
        cond_dim: 0,
        null_cond: NullCond::None,
        ..tiny(NullCond::None)
    };
    let (mu, _) = Denoiser::init(&cfg, 3, DType::F32, &dev).unwrap();
    assert_eq!(mu.forward(&x, &t, None).unwrap().dims(), &[4, 6]);
}

// ---------------------------------------------------------------------------------------------
// Gradients

/// Every parameter's gradient (and those of x_t and c) against central finite differences in
/// f64, on a tiny model whose loss goes through every layer, the learned null condition
/// included. This is the check that the hand-written layer norm passes gradients (candle's
/// `LayerNorm` would leave the layers before it and its own affine without any) and that the
/// GELU gradient is exact (candle's fused `gelu_erf` backward is off by 7e-7 relative, which
/// this 1e-7 tolerance catches; the composed GELU gives ~1e-9).
#[test]
fn gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let (m, vm) = Denoiser::init(&tiny(NullCond::Learned), 11, DType::F64, &dev).unwrap();
    let mut rng = Rng::new(12);
    // Non-trivial layer norm affine and null vector.
    for (name, var) in vm.data().lock().unwrap().iter() {
        if name.contains("layer_norm") || name == "null_cond" {
            let base =
                if name.ends_with("layer_norm1.weight") || name.ends_with("layer_norm2.weight") {
                    1.0
                } else {
                    0.0
                };
            let v: Vec<f64> = (0..var.elem_count())
                .map(|_| base + 0.3 * rng.normal())
                .collect();
            var.set(&Tensor::from_vec(v, var.dims(), &dev).unwrap())
                .unwrap();
        }
    }
    let b = 3;
    let x = Var::from_tensor(&rng.normal_tensor(&[b, 6], DType::F64, &dev).unwrap()).unwrap();
    let c = Var::from_tensor(&rng.normal_tensor(&[b, 4], DType::F64, &dev).unwrap()).unwrap();
    let r = rng.normal_tensor(&[b, 6], DType::F64, &dev).unwrap();
    let t = timestep_tensor(&[0, 37, 999], &dev).unwrap();
    let mask = Tensor::new(&[0u8, 1, 0], &dev).unwrap();
    let loss = || -> f64 {
        m.forward_masked(x.as_tensor(), &t, c.as_tensor(), &mask)
            .unwrap()
            .mul(&r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = m
        .forward_masked(x.as_tensor(), &t, c.as_tensor(), &mask)
        .unwrap()
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();

    let mut vars: Vec<(String, Var)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.push(("x_t".into(), x.clone()));
    vars.push(("cond".into(), c.clone()));
    assert_eq!(vars.len(), m.named_tensors().len() + 2);
    let h = 1e-6;
    let mut worst = 0.0f64;
    let mut checked = 0;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient (dropped by some op)"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let gnorm: f64 = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(gnorm > 0.0, "{name}: zero gradient");
        for i in 0..base.len() {
            let mut v = base.clone();
            v[i] = base[i] + h;
            var.set(&Tensor::from_vec(v.clone(), var.dims(), &dev).unwrap())
                .unwrap();
            let lp = loss();
            v[i] = base[i] - h;
            var.set(&Tensor::from_vec(v, var.dims(), &dev).unwrap())
                .unwrap();
            let lm = loss();
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &dev).unwrap())
                .unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let err = (fd - g[i]).abs() / fd.abs().max(1.0);
            worst = worst.max(err);
            assert!(
                err < 1e-7,
                "{name}[{i}]: autograd {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
    }
    // Condition rows that were dropped get no gradient; kept rows do.
    let gc = vec2(grads.get(c.as_tensor()).unwrap());
    assert!(gc[1].iter().all(|&v| v == 0.0));
    assert!(gc[0].iter().any(|&v| v != 0.0));
    println!("{checked} gradient entries checked, worst relative error {worst:.2e}");
}

// ---------------------------------------------------------------------------------------------
// Training

/// Two Gaussian blobs in R^4 (means +-m, std 0.1); the condition is the blob's one-hot label.
fn blobs(rng: &mut Rng, n: usize, dev: &Device) -> (Tensor, Tensor) {
    let m = [1.0, -0.5, 0.5, 1.0];
    let mut x = Vec::with_capacity(n * 4);
    let mut c = Vec::with_capacity(n * 2);
    for _ in 0..n {
        let k = rng.below(2) as usize;
        let s = if k == 0 { 1.0 } else { -1.0 };
        x.extend(m.iter().map(|v| s * v + 0.1 * rng.normal()));
        c.extend(if k == 0 { [1.0, 0.0] } else { [0.0, 1.0] });
    }
    (
        Tensor::from_vec(x, (n, 4), dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
        Tensor::from_vec(c, (n, 2), dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
    )
}

/// Trains a tiny conditional model for `steps` Adam steps; returns (eval loss before, after).
fn train_toy(seed: u64, steps: usize) -> (f32, f32) {
    let dev = Device::Cpu;
    let sched = Schedule::scorehmr();
    let cfg = DenoiserConfig {
        pose_dim: 4,
        cond_dim: 2,
        hidden: 32,
        blocks: 2,
        null_cond: NullCond::Learned,
    };
    let (model, vm): (Denoiser, VarMap) = Denoiser::init(&cfg, seed, DType::F32, &dev).unwrap();
    let mut rng = Rng::new(seed ^ 0x5eed);
    // A fixed evaluation batch.
    let (ex, ec) = blobs(&mut rng, 512, &dev);
    let et = rng.timesteps(512, 1000, &dev).unwrap();
    let en = rng.normal_tensor(&[512, 4], DType::F32, &dev).unwrap();
    let eval = |m: &Denoiser| -> f32 {
        training_loss(m, &sched, &ex, Some(&ec), &et, &en)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let before = eval(&model);
    // ScoreHMR trains Adam with betas (0.9, 0.99) and no weight decay; a larger lr for a toy.
    let params = ParamsAdamW {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AdamW::new(vm.all_vars_sorted(), params).unwrap();
    for step in 0..steps {
        let (x0, c) = blobs(&mut rng, 128, &dev);
        let t = rng.timesteps(128, 1000, &dev).unwrap();
        let noise = rng.normal_tensor(&[128, 4], DType::F32, &dev).unwrap();
        let loss = if step % 4 == 3 {
            // Classifier-free-guidance dropout on some steps (10% of rows).
            let m: Vec<u8> = (0..128).map(|_| (rng.uniform() < 0.1) as u8).collect();
            let m = Tensor::from_vec(m, 128, &dev).unwrap();
            training_loss_masked(&model, &sched, &x0, &c, &m, &t, &noise).unwrap()
        } else {
            training_loss(&model, &sched, &x0, Some(&c), &t, &noise).unwrap()
        };
        opt.backward_step(&loss).unwrap();
    }
    (before, eval(&model))
}

trait SortedVars {
    fn all_vars_sorted(&self) -> Vec<Var>;
}
impl SortedVars for VarMap {
    /// The variables in name order (HashMap order would make the optimiser state order, and
    /// nothing else, vary between runs; sorted keeps the run obviously deterministic).
    fn all_vars_sorted(&self) -> Vec<Var> {
        let d = self.data().lock().unwrap();
        let mut k: Vec<&String> = d.keys().collect();
        k.sort();
        k.into_iter().map(|k| d[k].clone()).collect()
    }
}

#[test]
fn training_reduces_loss_deterministically() {
    let (before, after) = train_toy(42, 300);
    println!("toy eps-MSE: {before:.4} -> {after:.4} after 300 Adam steps");
    assert!(after < 0.6 * before, "loss {before} -> {after}");
    let (b2, a2) = train_toy(42, 300);
    assert_eq!(
        (before.to_bits(), after.to_bits()),
        (b2.to_bits(), a2.to_bits()),
        "not deterministic"
    );
}

#[test]
fn training_loss_is_the_eps_mse() {
    let dev = Device::Cpu;
    let sched = Schedule::scorehmr();
    let (m, _) = Denoiser::init(&tiny(NullCond::Zero), 9, DType::F32, &dev).unwrap();
    let mut rng = Rng::new(4);
    let x0 = rng.normal_tensor(&[5, 6], DType::F32, &dev).unwrap();
    let c = rng.normal_tensor(&[5, 4], DType::F32, &dev).unwrap();
    let noise = rng.normal_tensor(&[5, 6], DType::F32, &dev).unwrap();
    let t = rng.timesteps(5, 1000, &dev).unwrap();
    let xt = sched.q_sample(&x0, &t, &noise).unwrap();
    let eps = m.forward(&xt, &t, Some(&c)).unwrap();
    let want: f32 = eps
        .sub(&noise)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let got: f32 = training_loss(&m, &sched, &x0, Some(&c), &t, &noise)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((got - want).abs() < 1e-6);
    let per = training_loss_per_sample(&m, &sched, &x0, Some(&c), &t, &noise).unwrap();
    assert_eq!(per.dims(), &[5]);
    let mean: f32 = per.mean_all().unwrap().to_scalar().unwrap();
    assert!((mean - want).abs() < 1e-6);
    let none = Tensor::zeros(5, DType::U8, &dev).unwrap();
    let masked: f32 = training_loss_masked(&m, &sched, &x0, &c, &none, &t, &noise)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((masked - want).abs() < 1e-6);
}
