//! glTF 2.0 binary (`.glb`) export of a fitted [`Motion`].
//!
//! What the file holds (glTF 2.0 specification, Khronos, sections 3.7 meshes, 3.8 skins,
//! 3.10 cameras, 3.11 animations):
//! - the body mesh with the motion's shape baked in: the rest mesh is the body model's forward
//!   pass at rest with the motion's betas (`POSITION`, smooth `NORMAL`, triangle indices);
//! - a skin over a 24-node skeleton whose nodes carry the SMPL joint names
//!   ([`crate::body::JOINT_NAMES`]) in SMPL order (node `i` is joint `i`) and parenting: rest local
//!   translations `J_i - J_parent` (root: `J_0`), identity rest rotations, inverse bind matrices
//!   that translate by `-J_i`;
//! - `JOINTS_0` (u8) / `WEIGHTS_0` (f32): the (at most) 4 largest skinning weights of each vertex,
//!   renormalised to sum to 1, in decreasing order; unused slots have weight 0 and joint 0;
//! - one animation named [`ANIMATION_NAME`] with, for every frame `f` at time `f / fps`, the
//!   local rotation of every joint (quaternions, `LINEAR`) and the root translation
//!   `J_0 + transl[f]`;
//! - one perspective camera per motion camera on its own node (`yfov` from `fy` and the image
//!   height, `aspectRatio` = W/H, `znear` = [`CAMERA_ZNEAR`], no `zfar`), with translation /
//!   rotation channels in the same animation when the camera moves.
//!
//! The world is Y-up, metres (glTF's own convention, and rigfit's), so nothing is converted.
//! The scene's root nodes are: [`RIG_NODE_NAME`], an identity node whose one child is the
//! skeleton root (`pelvis`); the skinned mesh node [`MESH_NODE_NAME`] (a root node with no
//! transform: the glTF validator warns on a skinned mesh below another node); and the cameras.
//! The identity rig node is for importers: Blender makes an armature of it, with the mesh under
//! it and the cameras beside it (with the pelvis itself at the scene root, Blender makes the
//! whole scene root its armature and parents the cameras to the character).
//!
//! What glTF cannot hold:
//! - pose-corrective blend shapes (SMPL's `posedirs`: a vertex offset linear in the 207 entries
//!   of `R - I`) have no glTF equivalent, so a model with pose correctives
//!   ([`BodyModel::has_pose_correctives`]) deforms by skinning alone in the file. The joints are
//!   exact either way: at frame `f` the file's joint world positions equal
//!   [`Motion::joints`]; the skinned vertices equal rigfit's forward pass exactly when the model
//!   has no pose correctives and at most 4 influences per vertex (the default body has both);
//! - the principal point of a camera (a glTF perspective camera is centred) and any skew.

use std::path::Path;

use gltf_json as json;
use json::validation::{Checked::Valid, USize64};

use crate::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_JOINTS};
use crate::error::{Error, Result};
use crate::geom::rot::{matrix_to_quat, quat_continuous};
use crate::motion::Motion;

/// Name of the one animation in the file.
pub const ANIMATION_NAME: &str = "rigfit";
/// Name of the skinned mesh node (and of its mesh).
pub const MESH_NODE_NAME: &str = "body";
/// Name of the identity root node above the skeleton (Blender's armature object).
pub const RIG_NODE_NAME: &str = "rig";
/// Near clip plane of exported cameras, metres.
pub const CAMERA_ZNEAR: f32 = 0.01;
/// Joint influences per vertex: glTF's one `JOINTS_0` / `WEIGHTS_0` set holds 4 (spec 3.7.3.3).
pub const MAX_INFLUENCES: usize = 4;

/// Encodes `motion` on `model` as a glTF 2.0 binary (`.glb`), see the module doc for the content.
///
/// Errors when the motion does not fit the model ([`Motion::validate`]) or the file would pass
/// the 4 GiB limit of a `.glb`.
pub fn to_glb(model: &BodyModel, motion: &Motion) -> Result<Vec<u8>> {
    motion.validate(model)?;
    let frames = motion.num_frames();
    let nv = model.num_verts();
    let faces = model.faces();

    // Rest mesh and joints of the shaped body (the forward pass at rest, no translation).
    let betas = motion.model_betas(model);
    let eye: Vec<f32> = (0..NUM_JOINTS).flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).collect();
    let mut rest = BodyOutput::default();
    model.forward(&betas, &eye, &[0.0; 3], &mut rest)?;
    let verts = &rest.vertices; // [V, 3]
    let joints = model.rest_joints(&betas)?; // [24, 3]
    let parents = model.parents();

    // Layout of the binary chunk (every view starts on a 4-byte boundary).
    let wide_index = nv > u16::MAX as usize;
    let index_bytes = faces.len() * 3 * if wide_index { 4 } else { 2 };
    let moving: Vec<(bool, bool)> =
        motion.cameras.iter().map(|c| (c.position.len() > 1, c.rotation.len() > 1)).collect();
    let cam_anim_bytes: usize = moving.iter().map(|&(t, r)| (t as usize * 12 + r as usize * 16) * frames).sum();
    let bin_len = nv * (12 + 12 + 4 + 16)
        + pad4(index_bytes)
        + NUM_JOINTS * 64
        + frames * 4
        + NUM_JOINTS * frames * 16
        + frames * 12
        + cam_anim_bytes;
    if bin_len > (u32::MAX as usize) - (1 << 20) {
        return Err(Error::Input(format!(
            "glTF export: {frames} frames of a {nv}-vertex body need {bin_len} bytes, past the 4 GiB limit of a .glb"
        )));
    }

    let mut b = Builder { root: json::Root::default(), bin: Vec::with_capacity(bin_len) };
    b.root.asset = json::Asset { generator: Some(format!("rigfit {}", env!("CARGO_PKG_VERSION"))), ..Default::default() };

    // ---- Mesh ----
    let start = b.bin.len();
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in verts.chunks_exact(3) {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
        b.f32s(p);
    }
    let view = b.view(start, Some(json::buffer::Target::ArrayBuffer), "positions");
    let positions =
        b.accessor(view, 0, nv, json::accessor::ComponentType::F32, json::accessor::Type::Vec3, Some((&lo, &hi)), "positions");

    let start = b.bin.len();
    for n in vertex_normals(verts, faces).chunks_exact(3) {
        b.f32s(n);
    }
    let view = b.view(start, Some(json::buffer::Target::ArrayBuffer), "normals");
    let normals = b.accessor(view, 0, nv, json::accessor::ComponentType::F32, json::accessor::Type::Vec3, None, "normals");

    let weights = &model.arrays().weights; // [V, 24]
    let start = b.bin.len();
    for row in weights.chunks_exact(NUM_JOINTS) {
        b.bin.extend_from_slice(&top_influences(row).0);
    }
    let view = b.view(start, Some(json::buffer::Target::ArrayBuffer), "joints");
    let joints_acc = b.accessor(view, 0, nv, json::accessor::ComponentType::U8, json::accessor::Type::Vec4, None, "joints");
    let start = b.bin.len();
    for row in weights.chunks_exact(NUM_JOINTS) {
        b.f32s(&top_influences(row).1);
    }
    let view = b.view(start, Some(json::buffer::Target::ArrayBuffer), "weights");
    let weights_acc = b.accessor(view, 0, nv, json::accessor::ComponentType::F32, json::accessor::Type::Vec4, None, "weights");

    let start = b.bin.len();
    for &i in faces.iter().flatten() {
        if wide_index {
            b.bin.extend_from_slice(&i.to_le_bytes());
        } else {
            b.bin.extend_from_slice(&(i as u16).to_le_bytes());
        }
    }
    let view = b.view(start, Some(json::buffer::Target::ElementArrayBuffer), "indices");
    b.pad();
    let index_type = if wide_index { json::accessor::ComponentType::U32 } else { json::accessor::ComponentType::U16 };
    let indices = b.accessor(view, 0, faces.len() * 3, index_type, json::accessor::Type::Scalar, None, "indices");

    // ---- Skin: inverse bind matrices (column-major 4x4), translation by -J_i ----
    let start = b.bin.len();
    for j in joints.chunks_exact(3) {
        b.f32s(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -j[0], -j[1], -j[2], 1.0]);
    }
    let view = b.view(start, None, "inverse_bind_matrices");
    let ibm = b.accessor(view, 0, NUM_JOINTS, json::accessor::ComponentType::F32, json::accessor::Type::Mat4, None, "inverse_bind_matrices");

    // ---- Animation data ----
    let start = b.bin.len();
    for f in 0..frames {
        b.f32s(&[motion.time(f)]);
    }
    let (t0, t1) = (motion.time(0), motion.time(frames - 1));
    let view = b.view(start, None, "times");
    let times =
        b.accessor(view, 0, frames, json::accessor::ComponentType::F32, json::accessor::Type::Scalar, Some((&[t0], &[t1])), "times");

    // Joint rotations [24, F, 4] (x, y, z, w), one accessor per joint.
    let start = b.bin.len();
    for j in 0..NUM_JOINTS {
        let mut prev = [1.0f64, 0.0, 0.0, 0.0];
        for f in 0..frames {
            let r = &motion.rotations[f * NUM_JOINTS + j];
            prev = quat_continuous(&matrix_to_quat(&r.map(|x| x as f64)), &prev);
            b.quat(&prev);
        }
    }
    let rot_view = b.view(start, None, "joint_rotations");
    let rot_acc: Vec<_> = (0..NUM_JOINTS)
        .map(|j| {
            b.accessor(
                rot_view,
                j * frames * 16,
                frames,
                json::accessor::ComponentType::F32,
                json::accessor::Type::Vec4,
                None,
                &format!("{}_rotation", JOINT_NAMES[j]),
            )
        })
        .collect();

    let start = b.bin.len();
    for t in &motion.translations {
        b.f32s(&[joints[0] + t[0], joints[1] + t[1], joints[2] + t[2]]);
    }
    let view = b.view(start, None, "root_translation");
    let root_tr = b.accessor(view, 0, frames, json::accessor::ComponentType::F32, json::accessor::Type::Vec3, None, "root_translation");

    // Camera tracks: per moving camera, positions [F, 3] then rotations [F, 4].
    let mut cam_acc = Vec::with_capacity(motion.cameras.len());
    for (c, &(mt, mr)) in motion.cameras.iter().zip(&moving) {
        let tr = mt.then(|| {
            let start = b.bin.len();
            for p in &c.position {
                b.f32s(p);
            }
            let view = b.view(start, None, &format!("{}_translation", c.name));
            b.accessor(view, 0, frames, json::accessor::ComponentType::F32, json::accessor::Type::Vec3, None, &format!("{}_translation", c.name))
        });
        let rot = mr.then(|| {
            let start = b.bin.len();
            let mut prev = [1.0f64, 0.0, 0.0, 0.0];
            for r in &c.rotation {
                prev = quat_continuous(&matrix_to_quat(&r.map(|x| x as f64)), &prev);
                b.quat(&prev);
            }
            let view = b.view(start, None, &format!("{}_rotation", c.name));
            b.accessor(view, 0, frames, json::accessor::ComponentType::F32, json::accessor::Type::Vec4, None, &format!("{}_rotation", c.name))
        });
        cam_acc.push((tr, rot));
    }
    debug_assert_eq!(b.bin.len(), bin_len);

    // ---- Nodes: 0..24 the skeleton, 24 the skinned mesh, 25 the rig root, then the cameras ----
    let root = &mut b.root;
    for j in 0..NUM_JOINTS {
        let p = parents[j];
        let t = if p < 0 {
            [joints[0], joints[1], joints[2]]
        } else {
            let p = p as usize;
            std::array::from_fn(|k| joints[j * 3 + k] - joints[p * 3 + k])
        };
        let children: Vec<_> = (0..NUM_JOINTS).filter(|&c| parents[c] == j as i32).map(|c| json::Index::new(c as u32)).collect();
        root.push(json::Node {
            name: Some(JOINT_NAMES[j].to_string()),
            translation: Some(t),
            children: (!children.is_empty()).then_some(children),
            ..Default::default()
        });
    }
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert(Valid(json::mesh::Semantic::Positions), positions);
    attributes.insert(Valid(json::mesh::Semantic::Normals), normals);
    attributes.insert(Valid(json::mesh::Semantic::Joints(0)), joints_acc);
    attributes.insert(Valid(json::mesh::Semantic::Weights(0)), weights_acc);
    let mesh = root.push(json::Mesh {
        extensions: None,
        extras: Default::default(),
        name: Some(MESH_NODE_NAME.to_string()),
        primitives: vec![json::mesh::Primitive {
            attributes,
            extensions: None,
            extras: Default::default(),
            indices: Some(indices),
            material: None,
            mode: Valid(json::mesh::Mode::Triangles),
            targets: None,
        }],
        weights: None,
    });
    let skin = root.push(json::Skin {
        extensions: None,
        extras: Default::default(),
        inverse_bind_matrices: Some(ibm),
        joints: (0..NUM_JOINTS as u32).map(json::Index::new).collect(),
        name: Some("skeleton".to_string()),
        skeleton: Some(json::Index::new(0)),
    });
    let mesh_node = root.push(json::Node {
        name: Some(MESH_NODE_NAME.to_string()),
        mesh: Some(mesh),
        skin: Some(skin),
        ..Default::default()
    });
    let rig_node = root.push(json::Node {
        name: Some(RIG_NODE_NAME.to_string()),
        children: Some(vec![json::Index::new(0)]),
        ..Default::default()
    });
    let mut scene_nodes = vec![rig_node, mesh_node];
    let mut cam_nodes = Vec::with_capacity(motion.cameras.len());
    for c in &motion.cameras {
        let camera = root.push(json::Camera {
            name: Some(c.name.clone()),
            orthographic: None,
            perspective: Some(json::camera::Perspective {
                aspect_ratio: Some(c.width as f32 / c.height as f32),
                yfov: c.yfov(),
                zfar: None,
                znear: CAMERA_ZNEAR,
                extensions: None,
                extras: Default::default(),
            }),
            type_: Valid(json::camera::Type::Perspective),
            extensions: None,
            extras: Default::default(),
        });
        let (r, p) = c.pose(0);
        let q = matrix_to_quat(&r.map(|x| x as f64));
        let node = root.push(json::Node {
            name: Some(c.name.clone()),
            camera: Some(camera),
            translation: Some(p),
            rotation: Some(json::scene::UnitQuaternion([q[1] as f32, q[2] as f32, q[3] as f32, q[0] as f32])),
            ..Default::default()
        });
        scene_nodes.push(node);
        cam_nodes.push(node);
    }

    // ---- Animation ----
    let mut anim = AnimBuilder { channels: Vec::new(), samplers: Vec::new(), times };
    for (j, &acc) in rot_acc.iter().enumerate() {
        anim.add(json::Index::new(j as u32), json::animation::Property::Rotation, acc);
    }
    anim.add(json::Index::new(0), json::animation::Property::Translation, root_tr);
    for (&node, &(tr, rot)) in cam_nodes.iter().zip(&cam_acc) {
        if let Some(acc) = tr {
            anim.add(node, json::animation::Property::Translation, acc);
        }
        if let Some(acc) = rot {
            anim.add(node, json::animation::Property::Rotation, acc);
        }
    }
    root.push(json::Animation {
        extensions: None,
        extras: Default::default(),
        channels: anim.channels,
        name: Some(ANIMATION_NAME.to_string()),
        samplers: anim.samplers,
    });

    let scene = root.push(json::Scene {
        extensions: None,
        extras: Default::default(),
        name: Some("rigfit".to_string()),
        nodes: scene_nodes,
    });
    root.scene = Some(scene);
    root.push(json::Buffer {
        byte_length: USize64::from(b.bin.len()),
        name: None,
        uri: None,
        extensions: None,
        extras: Default::default(),
    });

    let json_bytes = b.root.to_vec().map_err(|e| Error::Input(format!("glTF export: JSON encoding failed: {e}")))?;
    let glb = ::gltf::binary::Glb {
        header: ::gltf::binary::Header { magic: *b"glTF", version: 2, length: 0 }, // to_writer computes the length
        json: std::borrow::Cow::Owned(json_bytes),
        bin: Some(std::borrow::Cow::Borrowed(&b.bin)),
    };
    let mut out = Vec::with_capacity(12 + 8 + pad4(glb.json.len()) + 8 + pad4(b.bin.len()));
    glb.to_writer(&mut out).map_err(|e| Error::Input(format!("glTF export: GLB encoding failed: {e}")))?;
    Ok(out)
}

/// Writes [`to_glb`]'s bytes to `path` atomically ([`crate::io::write_atomic`]): a failed write
/// leaves no file, and an existing file is replaced whole.
pub fn write_glb(path: &Path, model: &BodyModel, motion: &Motion) -> Result<()> {
    let bytes = to_glb(model, motion)?;
    crate::io::write_atomic(path, &bytes)
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// The (at most) [`MAX_INFLUENCES`] largest positive weights of a skinning row `[24]`, in
/// decreasing order (ties: lower joint first), renormalised so that their f32 values sum to 1
/// (the largest takes the rounding); unused slots are joint 0 with weight 0. A row without a
/// positive weight binds to joint 0.
pub(crate) fn top_influences(row: &[f32]) -> ([u8; MAX_INFLUENCES], [f32; MAX_INFLUENCES]) {
    let mut top = [(0.0f32, 0usize); MAX_INFLUENCES];
    let mut n = 0;
    for (j, &w) in row.iter().enumerate() {
        if !(w > 0.0) {
            continue;
        }
        let mut k = if n < MAX_INFLUENCES {
            n += 1;
            n - 1
        } else if w > top[MAX_INFLUENCES - 1].0 {
            MAX_INFLUENCES - 1
        } else {
            continue;
        };
        top[k] = (w, j);
        while k > 0 && top[k].0 > top[k - 1].0 {
            top.swap(k, k - 1);
            k -= 1;
        }
    }
    if n == 0 {
        return ([0; MAX_INFLUENCES], [1.0, 0.0, 0.0, 0.0]);
    }
    let sum: f64 = top[..n].iter().map(|&(w, _)| w as f64).sum();
    let mut joints = [0u8; MAX_INFLUENCES];
    let mut weights = [0f32; MAX_INFLUENCES];
    let mut rest = 0f64;
    for k in 1..n {
        weights[k] = (top[k].0 as f64 / sum) as f32;
        joints[k] = top[k].1 as u8;
        rest += weights[k] as f64;
    }
    weights[0] = (1.0 - rest) as f32;
    joints[0] = top[0].1 as u8;
    (joints, weights)
}

/// Area-weighted vertex normals `[V, 3]` of a mesh `verts` `[V, 3]`, unit length (computed in
/// f64); a vertex in no (non-degenerate) face gets +Y.
fn vertex_normals(verts: &[f32], faces: &[[u32; 3]]) -> Vec<f32> {
    let nv = verts.len() / 3;
    let mut acc = vec![[0f64; 3]; nv];
    let p = |i: u32| -> [f64; 3] { std::array::from_fn(|k| verts[i as usize * 3 + k] as f64) };
    for f in faces {
        let (a, b, c) = (p(f[0]), p(f[1]), p(f[2]));
        let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
        for &i in f {
            for k in 0..3 {
                acc[i as usize][k] += n[k];
            }
        }
    }
    let mut out = Vec::with_capacity(nv * 3);
    for n in acc {
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if len > 1e-20 && len.is_finite() {
            out.extend(n.iter().map(|&x| (x / len) as f32));
        } else {
            out.extend([0.0, 1.0, 0.0]);
        }
    }
    out
}

struct Builder {
    root: json::Root,
    bin: Vec<u8>,
}

impl Builder {
    fn f32s(&mut self, xs: &[f32]) {
        for x in xs {
            self.bin.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Appends a unit quaternion `[w, x, y, z]` in glTF's order `(x, y, z, w)`.
    fn quat(&mut self, q: &[f64; 4]) {
        self.f32s(&[q[1] as f32, q[2] as f32, q[3] as f32, q[0] as f32]);
    }

    fn pad(&mut self) {
        while self.bin.len() % 4 != 0 {
            self.bin.push(0);
        }
    }

    /// A buffer view over `bin[start..]`.
    fn view(&mut self, start: usize, target: Option<json::buffer::Target>, name: &str) -> json::Index<json::buffer::View> {
        self.root.push(json::buffer::View {
            buffer: json::Index::new(0),
            byte_length: USize64::from(self.bin.len() - start),
            byte_offset: Some(USize64::from(start)),
            byte_stride: None,
            name: Some(name.to_string()),
            target: target.map(Valid),
            extensions: None,
            extras: Default::default(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn accessor(
        &mut self,
        view: json::Index<json::buffer::View>,
        offset: usize,
        count: usize,
        component: json::accessor::ComponentType,
        type_: json::accessor::Type,
        min_max: Option<(&[f32], &[f32])>,
        name: &str,
    ) -> json::Index<json::Accessor> {
        let (min, max) = match min_max {
            Some((lo, hi)) => (Some(json::Value::from(lo)), Some(json::Value::from(hi))),
            None => (None, None),
        };
        self.root.push(json::Accessor {
            buffer_view: Some(view),
            byte_offset: (offset > 0).then(|| USize64::from(offset)),
            count: USize64::from(count),
            component_type: Valid(json::accessor::GenericComponentType(component)),
            extensions: None,
            extras: Default::default(),
            type_: Valid(type_),
            min,
            max,
            name: Some(name.to_string()),
            normalized: false,
            sparse: None,
        })
    }
}

struct AnimBuilder {
    channels: Vec<json::animation::Channel>,
    samplers: Vec<json::animation::Sampler>,
    times: json::Index<json::Accessor>,
}

impl AnimBuilder {
    fn add(&mut self, node: json::Index<json::Node>, path: json::animation::Property, output: json::Index<json::Accessor>) {
        let sampler = json::Index::push(
            &mut self.samplers,
            json::animation::Sampler {
                extensions: None,
                extras: Default::default(),
                input: self.times,
                interpolation: Valid(json::animation::Interpolation::Linear),
                output,
            },
        );
        self.channels.push(json::animation::Channel {
            sampler,
            target: json::animation::Target { extensions: None, extras: Default::default(), node, path: Valid(path) },
            extensions: None,
            extras: Default::default(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_influences_keeps_the_four_largest_renormalised() {
        let mut row = [0f32; 24];
        // 6 influences: 0.05 (j2), 0.3 (j5), 0.1 (j7), 0.25 (j11), 0.2 (j13), 0.1 (j20).
        for (j, w) in [(2, 0.05), (5, 0.3), (7, 0.1), (11, 0.25), (13, 0.2), (20, 0.1)] {
            row[j] = w;
        }
        let (j, w) = top_influences(&row);
        // Tie 0.1 (j7, j20): the lower joint stays.
        assert_eq!(j, [5, 11, 13, 7]);
        let s = 0.3f64 + 0.25 + 0.2 + 0.1;
        for (k, e) in [0.3, 0.25, 0.2, 0.1].iter().enumerate() {
            assert!((w[k] as f64 - e / s).abs() < 1e-6, "{w:?}");
        }
        let sum: f64 = w.iter().map(|&x| x as f64).sum();
        assert!((sum - 1.0).abs() < 1e-7, "{sum}");
    }

    #[test]
    fn top_influences_fills_unused_slots_with_joint_zero() {
        let mut row = [0f32; 24];
        row[9] = 0.25;
        row[3] = 0.75;
        assert_eq!(top_influences(&row), ([3, 9, 0, 0], [0.75, 0.25, 0.0, 0.0]));
        row = [0.0; 24];
        row[17] = 1.0;
        assert_eq!(top_influences(&row), ([17, 0, 0, 0], [1.0, 0.0, 0.0, 0.0]));
        assert_eq!(top_influences(&[0.0; 24]), ([0, 0, 0, 0], [1.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn quaternion_track_stays_on_one_hemisphere() {
        let q = quat_continuous(&[-0.9, 0.1, 0.0, 0.0], &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(q, [0.9, -0.1, 0.0, 0.0]);
        let q = quat_continuous(&[0.1, 0.9, 0.0, 0.0], &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(q, [0.1, 0.9, 0.0, 0.0]);
    }
}
