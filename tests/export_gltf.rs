//! glTF export (`rigfit::export::gltf`): the file read back with the `gltf` crate and evaluated
//! by hand, the Khronos glTF-Validator, real Blender (headless `bpy`), and atomic writes.
//!
//! External tools (the test FAILS, with the install line, when one is missing):
//! - node >= 18 and `npm ci --prefix tools/node` (the pinned npm `gltf-validator`);
//! - Python 3.11 with `pip install 'bpy==4.5.*'` (`python3`, or the interpreter named by
//!   `RIGFIT_PYTHON`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rigfit::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_JOINTS, SMPL_PARENTS};
use rigfit::export::gltf::{to_glb, write_glb, ANIMATION_NAME, CAMERA_ZNEAR, MESH_NODE_NAME, RIG_NODE_NAME};
use rigfit::geom::camera::Pinhole;
use rigfit::geom::rot::{axis_angle_to_matrix, mat3_apply, mat3_mul, quat_to_matrix};
use rigfit::motion::{Motion, MotionCamera};

const FRAMES: usize = 6;
const FPS: f32 = 25.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder under the target dir for this test's files.
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("export_gltf").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rot_y(a: f32) -> [f32; 9] {
    axis_angle_to_matrix(&[0.0, a, 0.0])
}

/// A small known motion: 6 frames at 25 fps, distinct rotations on every joint (the root turns
/// past pi about a tilted axis, so its quaternion track must stay on one hemisphere), a curved
/// translation path, non-zero betas, one static and one moving camera.
fn known_motion() -> Motion {
    let mut m = Motion::rest(FRAMES, 10, FPS);
    m.betas = vec![1.5, -1.0, 0.5, 0.8, -0.3, 0.0, 0.2, -0.6, 0.4, 0.1];
    for f in 0..FRAMES {
        for j in 0..NUM_JOINTS {
            let (ff, jj) = (f as f32, j as f32);
            let aa = if j == 0 {
                [0.1, 0.7 * ff, 0.05 * ff]
            } else {
                [0.4 * (ff * 0.9 + jj * 0.7).sin(), 0.35 * (ff * 0.4 + jj * 1.3).cos(), 0.3 * (ff * 0.6 - jj * 0.5).sin()]
            };
            m.rotations[f * NUM_JOINTS + j] = axis_angle_to_matrix(&aa);
        }
        m.translations[f] = [0.3 * f as f32, 0.05 * (f * f) as f32, -0.2 * f as f32];
    }
    let k = Pinhole { fx: 1000.0, fy: 1100.0, cx: 640.0, cy: 360.0 };
    m.cameras.push(MotionCamera::fixed("front", k, 1280, 720, rot_y(0.0), [0.0, 1.0, 4.0]));
    let mut orbit = MotionCamera::fixed("orbit", Pinhole { fx: 800.0, fy: 800.0, cx: 320.0, cy: 240.0 }, 640, 480, rot_y(0.0), [0.0; 3]);
    orbit.rotation = (0..FRAMES).map(|f| rot_y(0.25 * f as f32)).collect();
    orbit.position = orbit.rotation.iter().map(|r| mat3_apply(r, &[0.0, 1.2, 4.0])).collect();
    m.cameras.push(orbit);
    m
}

fn model() -> BodyModel {
    BodyModel::default_body().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Evaluating the file by hand
// ---------------------------------------------------------------------------------------------

/// A rigid transform (rotation row-major, translation), f64.
#[derive(Clone, Copy, Debug)]
struct Rigid {
    r: [f64; 9],
    t: [f64; 3],
}

impl Rigid {
    fn from_tr(t: [f32; 3], q_xyzw: [f32; 4]) -> Self {
        let q = [q_xyzw[3] as f64, q_xyzw[0] as f64, q_xyzw[1] as f64, q_xyzw[2] as f64];
        Rigid { r: quat_to_matrix(&q), t: t.map(|x| x as f64) }
    }
    fn then_child(&self, c: &Rigid) -> Rigid {
        let t = mat3_apply(&self.r, &c.t);
        Rigid { r: mat3_mul(&self.r, &c.r), t: [t[0] + self.t[0], t[1] + self.t[1], t[2] + self.t[2]] }
    }
    fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let q = mat3_apply(&self.r, &p);
        [q[0] + self.t[0], q[1] + self.t[1], q[2] + self.t[2]]
    }
}

/// Everything the tests read from a .glb.
struct Read {
    doc: gltf::Document,
    blob: Vec<u8>,
}

impl Read {
    fn new(bytes: &[u8]) -> Self {
        let g = gltf::Gltf::from_slice(bytes).expect("the gltf crate reads the file");
        let blob = g.blob.clone().expect("a .glb with a BIN chunk");
        Read { doc: g.document, blob }
    }

    /// Keyframe values of every animated (node, property) at `frame`, looked up by time
    /// `frame / fps` in the sampler's input (which must hold that time exactly).
    fn local_at(&self, frame: usize) -> Vec<Rigid> {
        let t_want = frame as f32 / FPS;
        let mut tr: Vec<([f32; 3], [f32; 4])> =
            self.doc.nodes().map(|n| { let (t, r, _) = n.transform().decomposed(); (t, r) }).collect();
        for anim in self.doc.animations() {
            for ch in anim.channels() {
                let rd = ch.reader(|_| Some(&self.blob));
                let times: Vec<f32> = rd.read_inputs().unwrap().collect();
                let k = times.iter().position(|&t| t == t_want).unwrap_or_else(|| panic!("no key at t = {t_want}: {times:?}"));
                let node = ch.target().node().index();
                match rd.read_outputs().unwrap() {
                    gltf::animation::util::ReadOutputs::Translations(mut it) => tr[node].0 = it.nth(k).unwrap(),
                    gltf::animation::util::ReadOutputs::Rotations(it) => tr[node].1 = it.into_f32().nth(k).unwrap(),
                    _ => panic!("unexpected animation path"),
                }
            }
        }
        tr.into_iter().map(|(t, r)| Rigid::from_tr(t, r)).collect()
    }

    /// World transforms of every node at `frame`.
    fn world_at(&self, frame: usize) -> Vec<Rigid> {
        let local = self.local_at(frame);
        let n = local.len();
        let mut parent = vec![usize::MAX; n];
        for node in self.doc.nodes() {
            for c in node.children() {
                parent[c.index()] = node.index();
            }
        }
        let mut world: Vec<Option<Rigid>> = vec![None; n];
        fn eval(i: usize, parent: &[usize], local: &[Rigid], world: &mut Vec<Option<Rigid>>) -> Rigid {
            if let Some(w) = world[i] {
                return w;
            }
            let w = if parent[i] == usize::MAX { local[i] } else { eval(parent[i], parent, local, world).then_child(&local[i]) };
            world[i] = Some(w);
            w
        }
        (0..n).map(|i| eval(i, &parent, &local, &mut world)).collect()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Largest distance (per coordinate) between the joint world positions the file implies at
/// every frame and rigfit's [`Motion::joints`].
fn joint_error(rd: &Read, model: &BodyModel, motion: &Motion) -> f32 {
    let expected = motion.joints(model).unwrap();
    let skin = rd.doc.skins().next().unwrap();
    let nodes: Vec<usize> = skin.joints().map(|n| n.index()).collect();
    let mut worst = 0f32;
    for f in 0..motion.num_frames() {
        let world = rd.world_at(f);
        for (j, &n) in nodes.iter().enumerate() {
            for k in 0..3 {
                worst = worst.max((world[n].t[k] as f32 - expected[(f * NUM_JOINTS + j) * 3 + k]).abs());
            }
        }
    }
    worst
}

// ---------------------------------------------------------------------------------------------
// 1. Read back
// ---------------------------------------------------------------------------------------------

#[test]
fn glb_reads_back_with_the_motion_s_skeleton_mesh_animation_and_cameras() {
    let model = model();
    let motion = known_motion();
    let bytes = to_glb(&model, &motion).unwrap();
    let rd = Read::new(&bytes);
    let doc = &rd.doc;
    let blob = &rd.blob;
    let betas = motion.model_betas(&model);
    let rest_j = model.rest_joints(&betas).unwrap();

    // Skin: 24 joints with SMPL names and parents, inverse bind matrices = translation by -J_i.
    let skins: Vec<_> = doc.skins().collect();
    assert_eq!(skins.len(), 1);
    let skin = &skins[0];
    let joints: Vec<_> = skin.joints().collect();
    assert_eq!(joints.len(), NUM_JOINTS);
    let mut parent_of = vec![-1i32; doc.nodes().count()];
    for n in doc.nodes() {
        for c in n.children() {
            parent_of[c.index()] = n.index() as i32;
        }
    }
    let rig = doc.nodes().find(|n| n.name() == Some(RIG_NODE_NAME)).unwrap();
    for (j, node) in joints.iter().enumerate() {
        assert_eq!(node.name(), Some(JOINT_NAMES[j]));
        let p = SMPL_PARENTS[j];
        let want = if p < 0 { rig.index() as i32 } else { joints[p as usize].index() as i32 };
        assert_eq!(parent_of[node.index()], want, "parent of {}", JOINT_NAMES[j]);
        // Rest local translation J_i - J_parent (root: J_0), identity rest rotation.
        let (t, r, s) = node.transform().decomposed();
        let want_t: [f32; 3] = std::array::from_fn(|k| rest_j[j * 3 + k] - if p < 0 { 0.0 } else { rest_j[p as usize * 3 + k] });
        assert!(max_abs_diff(&t, &want_t) < 1e-6, "{}: {t:?} vs {want_t:?}", JOINT_NAMES[j]);
        assert_eq!((r, s), ([0.0, 0.0, 0.0, 1.0], [1.0; 3]));
    }
    assert_eq!(skin.skeleton().map(|n| n.index()), Some(joints[0].index()));
    let ibm: Vec<[[f32; 4]; 4]> = skin.reader(|_| Some(blob)).read_inverse_bind_matrices().unwrap().collect();
    assert_eq!(ibm.len(), NUM_JOINTS);
    for (j, m) in ibm.iter().enumerate() {
        let mut want = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        want[3] = [-rest_j[j * 3], -rest_j[j * 3 + 1], -rest_j[j * 3 + 2], 1.0];
        assert_eq!(*m, want, "inverse bind matrix of {}", JOINT_NAMES[j]);
    }

    // One buffer, exactly the data (no gaps beyond 4-byte alignment): positions, normals,
    // joints (u8x4), weights, u16 indices (padded), 24 inverse bind matrices, times, 24
    // rotation tracks, the root translation track and the orbit camera's two tracks.
    let nv = model.num_verts();
    let idx_bytes = (model.faces().len() * 3 * 2).div_ceil(4) * 4;
    let want_len = nv * (12 + 12 + 4 + 16) + idx_bytes + 24 * 64 + FRAMES * (4 + 24 * 16 + 12 + 12 + 16);
    let buffers: Vec<_> = doc.buffers().collect();
    assert_eq!(buffers.len(), 1);
    assert_eq!((buffers[0].length(), blob.len()), (want_len, want_len));

    // Scene: the rig (an identity node over the skeleton root), the skinned mesh node (no
    // transform) and the two camera nodes.
    let scene = doc.default_scene().unwrap();
    let roots: Vec<_> = scene.nodes().map(|n| n.name().unwrap().to_string()).collect();
    assert_eq!(roots, [RIG_NODE_NAME, MESH_NODE_NAME, "front", "orbit"]);
    assert_eq!(rig.children().map(|c| c.index()).collect::<Vec<_>>(), [joints[0].index()]);
    assert_eq!(rig.transform().decomposed(), ([0.0; 3], [0.0, 0.0, 0.0, 1.0], [1.0; 3]));
    let mesh_node = doc.nodes().find(|n| n.name() == Some(MESH_NODE_NAME)).unwrap();
    assert_eq!(mesh_node.skin().map(|s| s.index()), Some(skin.index()));
    assert_eq!(mesh_node.transform().decomposed(), ([0.0; 3], [0.0, 0.0, 0.0, 1.0], [1.0; 3]));

    // Mesh: the shaped rest mesh (rigfit's forward at rest with the motion's betas).
    let prims: Vec<_> = mesh_node.mesh().unwrap().primitives().collect();
    assert_eq!(prims.len(), 1);
    let pr = prims[0].reader(|_| Some(blob));
    let pos: Vec<f32> = pr.read_positions().unwrap().flatten().collect();
    assert_eq!(pos.len(), nv * 3);
    let eye: Vec<f32> = (0..NUM_JOINTS).flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).collect();
    let mut out = BodyOutput::default();
    model.forward(&betas, &eye, &[0.0; 3], &mut out).unwrap();
    assert_eq!(pos, out.vertices, "rest mesh = forward at rest with the betas");
    let mut zero = BodyOutput::default();
    model.forward(&vec![0.0; betas.len()], &eye, &[0.0; 3], &mut zero).unwrap();
    assert!(max_abs_diff(&pos, &zero.vertices) > 0.01, "the betas change the mesh");
    let normals: Vec<[f32; 3]> = pr.read_normals().unwrap().collect();
    assert_eq!(normals.len(), nv);
    assert!(normals.iter().all(|n| ((n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt() - 1.0).abs() < 1e-6));
    let idx: Vec<u32> = pr.read_indices().unwrap().into_u32().collect();
    let faces: Vec<u32> = model.faces().iter().flatten().copied().collect();
    assert_eq!(idx, faces);

    // JOINTS_0 / WEIGHTS_0: the model's weights (the default body has at most 4 per vertex),
    // summing to 1, zero slots on joint 0.
    let jn: Vec<[u16; 4]> = pr.read_joints(0).unwrap().into_u16().collect();
    let wt: Vec<[f32; 4]> = pr.read_weights(0).unwrap().into_f32().collect();
    assert_eq!((jn.len(), wt.len()), (nv, nv));
    let mw = &model.arrays().weights;
    for v in 0..nv {
        let sum: f64 = wt[v].iter().map(|&w| w as f64).sum();
        assert!((sum - 1.0).abs() < 1e-6, "vertex {v} weights sum to {sum}");
        let mut dense = [0f32; NUM_JOINTS];
        for k in 0..4 {
            if wt[v][k] == 0.0 {
                assert_eq!(jn[v][k], 0, "vertex {v}: a zero-weight slot must use joint 0");
            }
            dense[jn[v][k] as usize] += wt[v][k];
        }
        assert!(max_abs_diff(&dense, &mw[v * NUM_JOINTS..(v + 1) * NUM_JOINTS]) < 1e-6, "vertex {v}");
    }

    // Animation "rigfit": 24 rotations + the root translation + the moving camera's two tracks,
    // all LINEAR, keyed at f / fps.
    let anims: Vec<_> = doc.animations().collect();
    assert_eq!(anims.len(), 1);
    assert_eq!(anims[0].name(), Some(ANIMATION_NAME));
    let mut targets = Vec::new();
    for ch in anims[0].channels() {
        assert_eq!(ch.sampler().interpolation(), gltf::animation::Interpolation::Linear);
        let times: Vec<f32> = ch.reader(|_| Some(blob)).read_inputs().unwrap().collect();
        let want: Vec<f32> = (0..FRAMES).map(|f| f as f32 / FPS).collect();
        assert_eq!(times, want);
        let name = ch.target().node().name().unwrap().to_string();
        let prop = format!("{:?}", ch.target().property());
        if let gltf::animation::util::ReadOutputs::Rotations(it) = ch.reader(|_| Some(blob)).read_outputs().unwrap() {
            let q: Vec<[f32; 4]> = it.into_f32().collect();
            assert_eq!(q.len(), FRAMES);
            for w in q.windows(2) {
                let d: f32 = (0..4).map(|k| w[0][k] * w[1][k]).sum();
                assert!(d >= 0.0, "{name}: consecutive keys on opposite hemispheres (the short arc is lost)");
            }
        }
        targets.push((name, prop));
    }
    let mut want: Vec<(String, String)> = JOINT_NAMES.iter().map(|n| (n.to_string(), "Rotation".to_string())).collect();
    want.push(("pelvis".into(), "Translation".into()));
    want.push(("orbit".into(), "Translation".into()));
    want.push(("orbit".into(), "Rotation".into()));
    assert_eq!(targets, want);

    // Joint world positions implied by the file = rigfit's forward pass, every frame; and the
    // skinned vertices (glTF skinning: sum_k w_k  World_jk  IBM_jk  v) = rigfit's vertices.
    let expected = motion.joints(&model).unwrap();
    let mut fwd = BodyOutput::default();
    motion.forward(&model, 0..FRAMES, true, &mut fwd).unwrap();
    let node_of_joint: Vec<usize> = joints.iter().map(|n| n.index()).collect();
    let mut worst_j = 0f32;
    let mut worst_v = 0f32;
    for f in 0..FRAMES {
        let world = rd.world_at(f);
        for j in 0..NUM_JOINTS {
            let p = world[node_of_joint[j]].t;
            for k in 0..3 {
                worst_j = worst_j.max((p[k] as f32 - expected[(f * NUM_JOINTS + j) * 3 + k]).abs());
            }
        }
        for v in 0..nv {
            let mut acc = [0f64; 3];
            for k in 0..4 {
                let j = jn[v][k] as usize;
                let m = &ibm[j]; // column-major
                let p = [pos[v * 3] as f64, pos[v * 3 + 1] as f64, pos[v * 3 + 2] as f64];
                let bind = [p[0] + m[3][0] as f64, p[1] + m[3][1] as f64, p[2] + m[3][2] as f64];
                let q = world[node_of_joint[j]].apply(bind);
                for c in 0..3 {
                    acc[c] += wt[v][k] as f64 * q[c];
                }
            }
            for c in 0..3 {
                worst_v = worst_v.max((acc[c] as f32 - fwd.vertices[(f * nv + v) * 3 + c]).abs());
            }
        }
    }
    assert!(worst_j < 1e-5, "joint world positions differ from Motion::joints by {worst_j} m");
    assert!(worst_v < 1e-5, "skinned vertices differ from the forward pass by {worst_v} m");
    // The pose is far from rest: the comparison is not trivially satisfied.
    assert!(max_abs_diff(&expected[(FRAMES - 1) * 72..], &expected[..72]) > 0.5);

    // Cameras: yfov from fy and the image height, aspect W/H, znear; node poses at every frame.
    let cams: Vec<_> = doc.nodes().filter(|n| n.camera().is_some()).collect();
    assert_eq!(cams.len(), 2);
    for (node, mc) in cams.iter().zip(&motion.cameras) {
        assert_eq!(node.name(), Some(mc.name.as_str()));
        let cam = node.camera().unwrap();
        let gltf::camera::Projection::Perspective(p) = cam.projection() else { panic!("perspective") };
        let yfov = 2.0 * (0.5 * mc.height as f32 / mc.intrinsics.fy).atan();
        assert!((p.yfov() - yfov).abs() < 1e-6);
        assert_eq!(p.aspect_ratio(), Some(mc.width as f32 / mc.height as f32));
        assert_eq!((p.znear(), p.zfar()), (CAMERA_ZNEAR, None));
    }
    for f in 0..FRAMES {
        let world = rd.world_at(f);
        for (node, mc) in cams.iter().zip(&motion.cameras) {
            let (r, c) = mc.pose(f);
            let w = world[node.index()];
            let r64 = r.map(|x| x as f64);
            assert!(w.r.iter().zip(&r64).all(|(a, b)| (a - b).abs() < 1e-6), "{} rotation at frame {f}", mc.name);
            assert!(w.t.iter().zip(&c).all(|(a, &b)| (a - b as f64).abs() < 1e-6), "{} position at frame {f}", mc.name);
        }
    }
}

#[test]
fn a_motion_that_does_not_fit_the_model_is_an_error() {
    let model = model();
    let mut m = known_motion();
    m.rotations.pop();
    let e = to_glb(&model, &m).unwrap_err().to_string();
    assert!(e.contains("rotations"), "{e}");
    let mut m = known_motion();
    m.betas = vec![0.1; model.num_betas() + 1];
    assert!(to_glb(&model, &m).is_err());
    let mut m = known_motion();
    m.cameras[1].position.pop();
    let e = to_glb(&model, &m).unwrap_err().to_string();
    assert!(e.contains("orbit"), "{e}");
}

/// A body with up to 6 influences per vertex and non-zero pose correctives: the file keeps the
/// 4 largest weights renormalised, the joints stay exact, and the validator accepts the weights.
#[test]
fn more_than_four_influences_and_pose_correctives() {
    let mut a = model().arrays().clone();
    let nv = a.num_verts();
    for v in 0..nv {
        let row = &mut a.weights[v * NUM_JOINTS..(v + 1) * NUM_JOINTS];
        row[(v * 7 + 5) % NUM_JOINTS] += 0.04;
        row[(v * 11 + 13) % NUM_JOINTS] += 0.02 + 0.0001 * (v % 7) as f32;
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|w| *w /= s);
    }
    let wide = a.weights.chunks(NUM_JOINTS).filter(|r| r.iter().filter(|&&w| w > 0.0).count() > 4).count();
    assert!(wide > 500, "only {wide} vertices have more than 4 influences");
    a.posedirs = (0..a.posedirs.len()).map(|i| 2e-3 * (i as f32 * 0.37).sin()).collect();
    let model = BodyModel::new(a).unwrap();
    assert!(model.has_pose_correctives());
    let motion = known_motion();
    let bytes = to_glb(&model, &motion).unwrap();
    let rd = Read::new(&bytes);
    let worst = joint_error(&rd, &model, &motion);
    assert!(worst < 1e-5, "joint world positions differ from Motion::joints by {worst} m");

    let prim = rd.doc.meshes().next().unwrap().primitives().next().unwrap();
    let pr = prim.reader(|_| Some(&rd.blob));
    let jn: Vec<[u16; 4]> = pr.read_joints(0).unwrap().into_u16().collect();
    let wt: Vec<[f32; 4]> = pr.read_weights(0).unwrap().into_f32().collect();
    let mw = &model.arrays().weights;
    for v in 0..nv {
        let row = &mw[v * NUM_JOINTS..(v + 1) * NUM_JOINTS];
        let mut order: Vec<usize> = (0..NUM_JOINTS).filter(|&j| row[j] > 0.0).collect();
        order.sort_by(|&x, &y| row[y].partial_cmp(&row[x]).unwrap().then(x.cmp(&y)));
        order.truncate(4);
        let kept: f64 = order.iter().map(|&j| row[j] as f64).sum();
        for (k, &j) in order.iter().enumerate() {
            assert_eq!(jn[v][k] as usize, j, "vertex {v}: slot {k}");
            assert!((wt[v][k] as f64 - row[j] as f64 / kept).abs() < 1e-6, "vertex {v}: slot {k}");
        }
        for k in order.len()..4 {
            assert_eq!((jn[v][k], wt[v][k]), (0, 0.0), "vertex {v}: unused slot {k}");
        }
    }

    let dir = scratch("wide");
    let file = dir.join("wide.glb");
    std::fs::write(&file, &bytes).unwrap();
    let (code, report) = validate(&file);
    assert_eq!(code, 0, "glTF-Validator:\n{report}");
}

// ---------------------------------------------------------------------------------------------
// 2. Khronos glTF-Validator
// ---------------------------------------------------------------------------------------------

/// Runs tools/validate_gltf.mjs on `file`: (exit code, printed report).
fn validate(file: &Path) -> (i32, String) {
    let out = Command::new("node")
        .arg(repo().join("tools/validate_gltf.mjs"))
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js >= 18, then `npm ci --prefix tools/node`"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 2, "the validator could not run; install it with `npm ci --prefix tools/node`:\n{text}");
    (code, text)
}

#[test]
fn khronos_validator_reports_no_error_and_no_warning() {
    let dir = scratch("validator");
    let model = model();
    let file = dir.join("motion.glb");
    write_glb(&file, &model, &known_motion()).unwrap();
    let (code, report) = validate(&file);
    assert_eq!(code, 0, "glTF-Validator:\n{report}");
    assert!(report.contains(" 0 errors, 0 warnings"), "{report}");

    // One frame, no camera: still valid.
    let one = dir.join("one_frame.glb");
    write_glb(&one, &model, &Motion::rest(1, 0, 30.0)).unwrap();
    let (code, report) = validate(&one);
    assert_eq!(code, 0, "glTF-Validator:\n{report}");

    // The check can fail: a truncated file, and a file whose first vertex weight is 2.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.join("truncated.glb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, report) = validate(&cut);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("ERROR"), "{report}");

    let g = gltf::Gltf::from_slice(&bytes).unwrap();
    let prim = g.document.meshes().next().unwrap().primitives().next().unwrap();
    let w = prim.get(&gltf::Semantic::Weights(0)).unwrap();
    let view = w.view().unwrap();
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let at = 12 + 8 + json_len + 8 + view.offset() + w.offset();
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&2.0f32.to_le_bytes());
    let badw = dir.join("bad_weight.glb");
    std::fs::write(&badw, &bad).unwrap();
    let (code, report) = validate(&badw);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("ACCESSOR_WEIGHTS_NON_NORMALIZED"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// 3. Real Blender
// ---------------------------------------------------------------------------------------------

fn python() -> String {
    std::env::var("RIGFIT_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Writes EXPECTED.json for tools/blender_check_gltf.py: rigfit's joint world positions (Y-up)
/// at every frame, the camera poses, and a sample of skinned vertices.
fn write_expected(path: &Path, model: &BodyModel, motion: &Motion) {
    let f = motion.num_frames();
    let joints = motion.joints(model).unwrap();
    let mut fwd = BodyOutput::default();
    motion.forward(model, 0..f, true, &mut fwd).unwrap();
    let nv = model.num_verts();
    let sample: Vec<usize> = (0..nv).step_by(97).collect();
    let cams: serde_json::Map<String, serde_json::Value> = motion
        .cameras
        .iter()
        .map(|c| {
            let pos: Vec<[f32; 3]> = (0..f).map(|i| c.pose(i).1).collect();
            let fwd_dir: Vec<[f32; 3]> = (0..f).map(|i| mat3_apply(&c.pose(i).0, &[0.0, 0.0, -1.0])).collect();
            (c.name.clone(), serde_json::json!({ "positions": pos, "forward": fwd_dir }))
        })
        .collect();
    let j = serde_json::json!({
        "fps": motion.fps,
        "frames": f,
        "joint_names": JOINT_NAMES,
        "joints": (0..f).map(|i| joints[i * 72..(i + 1) * 72].chunks(3).map(|p| [p[0], p[1], p[2]]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "cameras": cams,
        "vertices": (0..f).map(|i| sample.iter().map(|&v| {
            let o = (i * nv + v) * 3;
            [fwd.vertices[o], fwd.vertices[o + 1], fwd.vertices[o + 2]]
        }).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "tolerance": 1e-4,
    });
    std::fs::write(path, serde_json::to_string(&j).unwrap()).unwrap();
}

fn blender_check(file: &Path, expected: &Path) -> (bool, String) {
    let out = Command::new(python())
        .arg(repo().join("tools/blender_check_gltf.py"))
        .arg(file)
        .arg(expected)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e}): install Python 3.11 and `pip install 'bpy==4.5.*'`", python()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.code() != Some(2) && !text.contains("No module named 'bpy'"),
        "Blender's Python module is missing: `{} -m pip install 'bpy==4.5.*'` (Python 3.11), or set RIGFIT_PYTHON:\n{text}",
        python()
    );
    (out.status.success(), text)
}

#[test]
fn blender_imports_the_rig_and_poses_it_like_rigfit() {
    let dir = scratch("blender");
    let model = model();
    let motion = known_motion();
    let file = dir.join("motion.glb");
    write_glb(&file, &model, &motion).unwrap();
    let expected = dir.join("expected.json");
    write_expected(&expected, &model, &motion);
    let (ok, report) = blender_check(&file, &expected);
    assert!(ok, "Blender check failed:\n{report}");
    assert!(report.contains("OK"), "{report}");

    // The check can fail: the same file against another motion's joints.
    let mut other = motion.clone();
    other.translations[3][1] += 0.01;
    let wrong = dir.join("wrong.json");
    write_expected(&wrong, &model, &other);
    let (ok, report) = blender_check(&file, &wrong);
    assert!(!ok, "Blender check passed on wrong expectations:\n{report}");
    assert!(report.contains("frame 3"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// 4. Atomic writes
// ---------------------------------------------------------------------------------------------

#[test]
fn write_glb_is_atomic() {
    let dir = scratch("atomic");
    let model = model();
    let motion = known_motion();

    // Into a folder that does not exist: an error naming the path, and nothing is created.
    let missing = dir.join("no_such_folder").join("out.glb");
    let e = write_glb(&missing, &model, &motion).unwrap_err().to_string();
    assert!(e.contains("no_such_folder"), "{e}");
    assert!(!dir.join("no_such_folder").exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    // An existing (longer) file is replaced whole by a new file (a reader that opened the old
    // one keeps reading the old bytes, never a mix), and no temporary file is left.
    let file = dir.join("out.glb");
    let old = vec![0xAB; 3 << 20];
    std::fs::write(&file, &old).unwrap();
    let mut reader = std::fs::File::open(&file).unwrap();
    write_glb(&file, &model, &motion).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes, to_glb(&model, &motion).unwrap());
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut seen).unwrap();
    assert!(seen == old, "the old file was overwritten in place, not replaced");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["out.glb"]);

    // A motion that does not fit leaves the existing file untouched.
    let mut bad = motion.clone();
    bad.fps = 0.0;
    assert!(write_glb(&file, &model, &bad).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}
