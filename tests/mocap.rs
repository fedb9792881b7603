//! BVH parsing and forward kinematics (hand-written fixtures with answers worked out by hand),
//! parse errors, and the CMU / Daz -> SMPL-24 retargeting, on a hand-written CMU-named fixture
//! and (when the folder is present) on the real clips in `../shared/data/mocap`.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use rigfit::body::NUM_JOINTS;
use rigfit::geom::rot::{identity, mat3_det, mat3_mul, mat3_transpose};
use rigfit::io::bvh::{axis_rotation, Bvh, Channel};
use rigfit::learn::mocap::{
    self, detect, is_validation, smpl_joint_positions, Clip, Retarget, CMU, DAZ, DAZ_STATIC_JOINTS, STATIC_JOINTS,
};

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(common::fixture(&format!("bvh/{name}"))).unwrap()
}

fn close3(a: [f64; 3], b: [f64; 3], tol: f64) -> bool {
    (0..3).all(|i| (a[i] - b[i]).abs() <= tol)
}

fn max_diff9(a: &[f64; 9], b: &[f64; 9]) -> f64 {
    (0..9).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max)
}

/// Rotation angle of `r` in degrees.
fn angle_deg(r: &[f64; 9]) -> f64 {
    ((r[0] + r[4] + r[8] - 1.0) / 2.0).clamp(-1.0, 1.0).acos().to_degrees()
}

fn rx(d: f64) -> [f64; 9] {
    axis_rotation(0, d.to_radians())
}
fn ry(d: f64) -> [f64; 9] {
    axis_rotation(1, d.to_radians())
}
fn rz(d: f64) -> [f64; 9] {
    axis_rotation(2, d.to_radians())
}

// ---------------------------------------------------------------------------------------------
// Parser and forward kinematics
// ---------------------------------------------------------------------------------------------

#[test]
fn chain_parses_with_known_structure() {
    let b = Bvh::parse(&read_fixture("chain.bvh"), "chain.bvh").unwrap();
    assert_eq!(b.joints.len(), 3);
    assert_eq!(b.joints.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["A", "B", "C"]);
    assert_eq!(b.joints.iter().map(|j| j.parent).collect::<Vec<_>>(), [None, Some(0), Some(1)]);
    assert_eq!(b.joints[1].offset, [0.0, 1.0, 0.0]);
    assert_eq!(b.joints[0].channels.len(), 6);
    assert_eq!(b.joints[1].channels, [Channel::Xrotation, Channel::Yrotation, Channel::Zrotation]);
    assert_eq!(b.joints[2].channels, [Channel::Zrotation, Channel::Yrotation, Channel::Xrotation]);
    assert_eq!(b.joints[2].end_site, Some([0.0, 1.0, 0.0]));
    assert_eq!(b.joints[1].end_site, None);
    assert_eq!(b.frames, 2);
    assert_eq!(b.num_channels(), 12);
    assert_eq!(b.data.len(), 24);
    assert!((b.frame_time - 0.0083333).abs() < 1e-12);
    assert_eq!(b.frame(1)[..4], [1.0, 2.0, 3.0, 90.0]);
}

#[test]
fn chain_forward_kinematics_by_hand() {
    let b = Bvh::parse(&read_fixture("chain.bvh"), "chain.bvh").unwrap();
    // Frame 0: all zero: a straight chain up +Y.
    let g = b.global_transforms(0);
    for (j, want) in [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0]].into_iter().enumerate() {
        assert!(close3(g[j].1, want, 1e-12), "frame 0 joint {j}: {:?}", g[j].1);
        assert!(max_diff9(&g[j].0, &identity()) < 1e-12);
    }
    assert!(close3(b.end_site_position(&g, 2).unwrap(), [0.0, 3.0, 0.0], 1e-12));

    // Frame 1: root at (1, 2, 3) turned 90 deg about Z: Rz90 = [0 -1 0; 1 0 0; 0 0 1], so
    // B = (1,2,3) + Rz90 (0,1,0) = (0, 2, 3). B's channels are X Y Z = 90 90 0, so its local
    // rotation is Rx90 Ry90 = [0 0 1; 1 0 0; 0 1 0] (Ry90 Rx90 would differ) and
    // G_B = Rz90 Rx90 Ry90 = [-1 0 0; 0 0 1; 0 1 0]. C = B + G_B (0,1,0) = (0, 2, 4); C has zero
    // rotation, so its End Site is C + G_B (0,1,0) = (0, 2, 5).
    let g = b.global_transforms(1);
    assert!(close3(g[0].1, [1.0, 2.0, 3.0], 1e-12), "{:?}", g[0].1);
    assert!(close3(g[1].1, [0.0, 2.0, 3.0], 1e-12), "{:?}", g[1].1);
    assert!(close3(g[2].1, [0.0, 2.0, 4.0], 1e-12), "{:?}", g[2].1);
    assert!(close3(b.end_site_position(&g, 2).unwrap(), [0.0, 2.0, 5.0], 1e-12));
    let want_gb = [-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0];
    assert!(max_diff9(&g[1].0, &want_gb) < 1e-12, "{:?}", g[1].0);
    assert!(max_diff9(&g[0].0, &[0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]) < 1e-12);
}

#[test]
fn crlf_and_compact_headers_parse_the_same() {
    let text = read_fixture("chain.bvh");
    let a = Bvh::parse(&text, "chain.bvh").unwrap();
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(Bvh::parse(&crlf, "crlf.bvh").unwrap(), a);
    let compact = text.replace("Frames: 2", "Frames:\t2").replace("Frame Time: .0083333", "Frame Time:0.0083333");
    assert_eq!(Bvh::parse(&compact, "compact.bvh").unwrap(), a);
}

/// Applies `edit` to the chain fixture and returns the parse error's message.
fn parse_err(edit: impl Fn(&str) -> String) -> String {
    let text = edit(&read_fixture("chain.bvh"));
    match Bvh::parse(&text, "bad.bvh") {
        Ok(_) => panic!("parsed a malformed file:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(msg: &str, line: usize, what: &str) {
    assert!(msg.contains("bad.bvh"), "no file name in: {msg}");
    assert!(msg.contains(&format!("line {line}:")), "expected line {line} in: {msg}");
    assert!(msg.contains(what), "expected `{what}` in: {msg}");
}

#[test]
fn malformed_files_name_the_line() {
    // Line numbers of chain.bvh: 8 = B's OFFSET, 9 = B's CHANNELS, 19 = `}` closing B,
    // 21 = MOTION, 22 = Frames, 23 = Frame Time, 24/25 = rows.
    let row1 = "1 2 3 90 0 0 90 90 0 0 0 0";
    let m = parse_err(|t| t.replace(row1, "1 2 3 90 0 0 90 90"));
    assert_names(&m, 25, "frame 1 has 8 values, expected 12");
    let m = parse_err(|t| t.replace(row1, &format!("{row1} 7")));
    assert_names(&m, 25, "more than 12");
    let m = parse_err(|t| t.replace(row1, "1 2 3 9O 0 0 90 90 0 0 0 0"));
    assert_names(&m, 25, "`9O` is not a number");
    let m = parse_err(|t| t.replace(row1, "1 2 3 nan 0 0 90 90 0 0 0 0"));
    assert_names(&m, 25, "not a finite number");
    let m = parse_err(|t| t.replace("Frames: 2", "Frames: 3"));
    assert_names(&m, 25, "truncated motion");
    let m = parse_err(|t| t.replace("Frames: 2", "Frames: two"));
    assert_names(&m, 22, "`two` is not a frame count");
    let m = parse_err(|t| t.replace("Frame Time: .0083333", "Frame Time: 0"));
    assert_names(&m, 23, "Frame Time must be positive");
    let m = parse_err(|t| t.replacen("OFFSET 0 1 0", "OFFSET 0 1 x", 1));
    assert_names(&m, 8, "OFFSET: `x` is not a number");
    let m = parse_err(|t| t.replace("3 Xrotation Yrotation Zrotation", "3 Xrotation Wrotation Zrotation"));
    assert_names(&m, 9, "unknown channel `Wrotation`");
    let m = parse_err(|t| t.replace("3 Xrotation Yrotation Zrotation", "3 Xrotation Xrotation Zrotation"));
    assert_names(&m, 9, "listed twice");
    // Remove B's closing brace (line 19): A is still open at MOTION.
    let m = parse_err(|t| {
        let mut l: Vec<&str> = t.lines().collect();
        l.remove(18);
        l.join("\n")
    });
    assert_names(&m, 20, "joint `A` (opened at line 3) is missing its closing `}`");
    // One `}` too many, after the hierarchy (new line 21).
    let m = parse_err(|t| t.replace("}\nMOTION", "}\n}\nMOTION"));
    assert_names(&m, 21, "unexpected `}`");
    // The file ends inside the hierarchy.
    let m = parse_err(|t| t.lines().take(12).collect::<Vec<_>>().join("\n"));
    assert_names(&m, 12, "joint `C` (opened at line 11) is missing its closing `}`");
    let m = parse_err(|t| t.replace("HIERARCHY", "HIERARCH"));
    assert_names(&m, 1, "expected HIERARCHY");
    let m = parse_err(|t| t.replace("ROOT A", "ROOT"));
    assert_names(&m, 4, "expected `{`, found `OFFSET`");
}

#[test]
fn load_names_the_missing_file() {
    let e = Bvh::load("/nonexistent/clip.bvh").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/clip.bvh"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Retargeting on the hand-written CMU-named skeleton (tests/fixtures/bvh/cmu_like.bvh)
// ---------------------------------------------------------------------------------------------
//
// Frame 0 (the T-pose) has the upper arms rotated -8 / +8 deg about Z (arms below horizontal,
// as the cgspeed T-pose). Frame 1: root at (1, 10, 2) turned 90 deg about Y, left forearm turned
// 90 deg about Y. Frame 2: left upper leg -30 deg about X, Neck1 20 and Head 10 deg about X,
// LeftFingerBase 15 deg about Z. Units: CMU (0.056444 m).

fn cmu_like() -> Bvh {
    Bvh::parse(&read_fixture("cmu_like.bvh"), "cmu_like.bvh").unwrap()
}

/// Expected local rotations for the fixture's frame `f` (all others identity).
fn cmu_like_expected(f: usize) -> [[f64; 9]; NUM_JOINTS] {
    let mut r = [identity::<f64>(); NUM_JOINTS];
    match f {
        1 => {
            r[0] = ry(90.0);
            // G_smpl = G G_T^-1 expresses the bend in the T-pose frame: the elbow's global
            // rotation Rz(-8) Ry(90) relative to the T-pose's Rz(-8), after the shoulder's
            // (identity): Rz(-8) Ry(90) Rz(8).
            r[18] = mat3_mul(&mat3_mul(&rz(-8.0), &ry(90.0)), &rz(8.0));
        }
        2 => {
            r[1] = rx(-30.0);
            r[15] = rx(30.0); // Neck1 then Head: 20 + 10 deg, on SMPL's head.
            r[20] = rz(15.0); // LeftFingerBase drives the wrist (Z commutes with the arm's Z).
        }
        _ => {}
    }
    r
}

#[test]
fn cmu_like_retargets_to_known_rotations() {
    let b = cmu_like();
    assert_eq!(detect(&b).map(|m| m.name), Some("cmu"));
    let rt = Retarget::new(&b, &CMU, "cmu_like.bvh").unwrap();
    let s = CMU.metres_per_unit;
    let want_t = [[0.0, 10.0 * s, 0.0], [s, 10.0 * s, 2.0 * s], [0.0, 9.0 * s, 0.0]];
    for f in 0..3 {
        let (local, t) = rt.frame(f);
        let want = cmu_like_expected(f);
        for j in 0..NUM_JOINTS {
            assert!(max_diff9(&local[j], &want[j]) < 1e-12, "frame {f} joint {j}: {:?} vs {:?}", local[j], want[j]);
        }
        assert!(close3(t, want_t[f], 1e-12), "frame {f}: {t:?}");
    }
    // Resampling: the fixture is at 30 fps, so 30 fps keeps frames 1 and 2, 15 fps only frame 1.
    let c = mocap::retarget(&b, &CMU, "cmu_like", 30.0).unwrap();
    assert_eq!(c.num_frames(), 2);
    assert_eq!(c.rotations.len(), 2 * NUM_JOINTS);
    assert!((c.fps - 30.0).abs() < 1e-3, "{}", c.fps);
    for (k, f) in [1, 2].into_iter().enumerate() {
        let want = cmu_like_expected(f);
        for j in 0..NUM_JOINTS {
            let got: [f64; 9] = c.rotations[k * NUM_JOINTS + j].map(|x| x as f64);
            assert!(max_diff9(&got, &want[j]) < 1e-6);
        }
        assert_eq!(c.pose(k).len(), NUM_JOINTS * 9);
    }
    let c = mocap::retarget(&b, &CMU, "cmu_like", 15.0).unwrap();
    assert_eq!(c.num_frames(), 1);
    assert!((c.fps - 15.0).abs() < 1e-3);
    assert!(mocap::retarget(&b, &CMU, "x", 0.0).is_err());
    assert!(mocap::retarget(&b, &CMU, "x", f32::NAN).is_err());
    // The wrong table names the missing joint.
    let e = Retarget::new(&b, &DAZ, "cmu_like.bvh").err().unwrap().to_string();
    assert!(e.contains("cmu_like.bvh") && e.contains("no joint `hip`"), "{e}");
}

#[test]
fn cmu_like_fk_reproduces_pivots() {
    let b = cmu_like();
    let rt = Retarget::new(&b, &CMU, "cmu_like.bvh").unwrap();
    let rest = rt.pivots(0);
    for f in 0..3 {
        let (local, t) = rt.frame(f);
        let fk = smpl_joint_positions(&local, &rest, t);
        let piv = rt.pivots(f);
        for j in 0..NUM_JOINTS {
            assert!(close3(fk[j], piv[j], 1e-12), "frame {f} joint {j}: {:?} vs {:?}", fk[j], piv[j]);
        }
    }
    // Hand check of one pivot: frame 1, left elbow (LeftForeArm) = root + Ry90 ((0, 2, 0) up the
    // spine + LeftArm offset (1.5, 0.5, 0) + Rz(-8) (2.5, 0, 0)), Ry90 (x, y, z) = (z, y, -x).
    let (s8, c8) = (8f64.to_radians().sin(), 8f64.to_radians().cos());
    let v = [1.5 + 2.5 * c8, 0.5 - 2.5 * s8, 0.0];
    let s = CMU.metres_per_unit;
    let want = [(1.0 + v[2]) * s, (12.0 + v[1]) * s, (2.0 - v[0]) * s];
    assert!(close3(rt.pivots(1)[18], want, 1e-12), "{:?} vs {want:?}", rt.pivots(1)[18]);
}

#[test]
fn load_dir_names_clips_by_relative_path() {
    let dir = std::env::temp_dir().join(format!("rigfit_mocap_test_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    // Empty folder: an error naming it.
    let e = mocap::load_dir(&dir, 30.0).unwrap_err().to_string();
    assert!(e.contains("no .bvh files"), "{e}");
    std::fs::write(dir.join("sub/b.bvh"), read_fixture("cmu_like.bvh")).unwrap();
    std::fs::write(dir.join("a.BVH"), read_fixture("cmu_like.bvh")).unwrap();
    std::fs::write(dir.join("standard.bvh"), read_fixture("cmu_like.bvh")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a clip").unwrap();
    let mut calls = Vec::new();
    let mut cb = |done: usize, total: usize| calls.push((done, total));
    let clips = mocap::load_dir_with_progress(&dir, 30.0, Some(&mut cb)).unwrap();
    assert_eq!(clips.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "sub/b"]);
    assert_eq!(calls.last(), Some(&(2, 2)));
    assert_eq!(clips[1].num_frames(), 2);
    // A file of an unknown skeleton: an error naming the file.
    std::fs::write(dir.join("sub/chain.bvh"), read_fixture("chain.bvh")).unwrap();
    let e = mocap::load_dir(&dir, 30.0).unwrap_err().to_string();
    assert!(e.contains("chain.bvh") && e.contains("unknown skeleton"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validation_split_matches_names() {
    assert!(is_validation("01/01_05"));
    assert!(is_validation("01_05"));
    assert!(is_validation("salsa/07"));
    assert!(is_validation("cmu-daz/salsa/07"));
    assert!(!is_validation("01/01_06"));
    assert!(!is_validation("x01_05"));
    assert!(!is_validation("salsa/01"));
    assert!(!is_validation("07"));
}

// ---------------------------------------------------------------------------------------------
// The real data (skipped when absent)
// ---------------------------------------------------------------------------------------------

fn mocap_dir() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [here.join("../shared/data/mocap"), PathBuf::from("/work/shared/data/mocap")];
    let found = candidates.into_iter().find(|p| p.join("cmu").is_dir());
    if found.is_none() {
        println!("SKIP: no mocap data at ../shared/data/mocap (relative to {})", here.display());
    }
    found
}

/// Every clip of `sub` at 30 fps, loaded once per test binary.
fn all_clips(sub: &str) -> Option<&'static Vec<Clip>> {
    static CMU_CLIPS: OnceLock<Option<Vec<Clip>>> = OnceLock::new();
    static DAZ_CLIPS: OnceLock<Option<Vec<Clip>>> = OnceLock::new();
    let cell = if sub == "cmu" { &CMU_CLIPS } else { &DAZ_CLIPS };
    cell.get_or_init(|| {
        let dir = mocap_dir()?.join(sub);
        if !dir.is_dir() {
            println!("SKIP: no {}", dir.display());
            return None;
        }
        let t = Instant::now();
        let clips = mocap::load_dir(&dir, 30.0).unwrap();
        println!("loaded {} clips from {} in {:.2} s", clips.len(), dir.display(), t.elapsed().as_secs_f64());
        Some(clips)
    })
    .as_ref()
}

fn split_report(clips: &[Clip]) -> (usize, usize, usize, usize) {
    let (mut tc, mut tp, mut vc, mut vp) = (0, 0, 0, 0);
    for c in clips {
        if is_validation(&c.name) {
            vc += 1;
            vp += c.num_frames();
        } else {
            tc += 1;
            tp += c.num_frames();
        }
    }
    (tc, tp, vc, vp)
}

#[test]
fn real_cmu_every_clip_loads_with_orthonormal_rotations() {
    let Some(clips) = all_clips("cmu") else { return };
    assert_eq!(clips.len(), 90);
    assert!(clips.windows(2).all(|w| w[0].name < w[1].name), "not sorted by name");
    for c in clips {
        assert!((c.fps - 30.0).abs() < 0.01, "{}: {} fps", c.name, c.fps);
        assert!(c.num_frames() > 0);
        assert_eq!(c.rotations.len(), c.num_frames() * NUM_JOINTS);
        for (k, r) in c.rotations.iter().enumerate() {
            let r: [f64; 9] = r.map(|x| x as f64);
            let rrt = mat3_mul(&r, &mat3_transpose(&r));
            assert!(max_diff9(&rrt, &identity()) < 1e-5, "{} rotation {k} not orthonormal", c.name);
            assert!((mat3_det(&r) - 1.0).abs() < 1e-5, "{} rotation {k}: det {}", c.name, mat3_det(&r));
        }
        for t in &c.translations {
            assert!(t.iter().all(|x| x.is_finite() && x.abs() < 50.0), "{}: translation {t:?}", c.name);
        }
        // Collars and hands never move in CMU (reference/mocap.md): the collars stay at rest,
        // the hands within the constant 7.125 degrees of L/RHandIndex1 (see STATIC_JOINTS).
        for f in 0..c.num_frames() {
            for &j in &STATIC_JOINTS {
                let r: [f64; 9] = c.rotations[f * NUM_JOINTS + j].map(|x| x as f64);
                let limit = if j < 20 { 1e-3 } else { 7.2 };
                let a = angle_deg(&r);
                assert!(a < limit, "{} frame {f}: static joint {j} turned {a} deg", c.name);
            }
        }
    }
    let (tc, tp, vc, vp) = split_report(clips);
    println!("cmu at 30 fps: {} poses; train {tc} clips / {tp} poses, validation {vc} clips / {vp} poses", tp + vp);
    assert_eq!(vc, 12);
    assert!(tp + vp > 20_000);
    let share = vp as f64 / (tp + vp) as f64;
    assert!((0.07..0.2).contains(&share), "validation share {share}");
}

#[test]
fn real_daz_every_clip_loads() {
    let Some(clips) = all_clips("cmu-daz") else { return };
    assert_eq!(clips.len(), 25, "standard.bvh must be skipped");
    for c in clips {
        assert!((c.fps - 30.0).abs() < 0.01, "{}: {} fps", c.name, c.fps);
        for (k, r) in c.rotations.iter().enumerate() {
            let r: [f64; 9] = r.map(|x| x as f64);
            assert!((mat3_det(&r) - 1.0).abs() < 1e-5, "{} rotation {k}", c.name);
            let j = k % NUM_JOINTS;
            if DAZ_STATIC_JOINTS.contains(&j) {
                assert!(max_diff9(&r, &identity()) < 1e-5, "{} rotation {k}: static joint {j} moves", c.name);
            }
        }
    }
    let (tc, tp, vc, vp) = split_report(clips);
    println!("cmu-daz at 30 fps: {} poses; train {tc} clips / {tp} poses, validation {vc} clips / {vp} poses", tp + vp);
    assert_eq!(vc, 3);
}

/// Loads one clip's BVH from the data folder.
fn real_bvh(rel: &str) -> Option<Bvh> {
    let p = mocap_dir()?.join(rel);
    if !p.is_file() {
        println!("SKIP: no {}", p.display());
        return None;
    }
    Some(Bvh::load(p).unwrap())
}

/// Checks, for every frame of `bvh`: frame 0 retargets to identity everywhere, and forward
/// kinematics of the SMPL tree with the T-pose pivots reproduces the frame's pivots.
fn check_exact(bvh: &Bvh, map: &mocap::SkeletonMap, name: &str) {
    let rt = Retarget::new(bvh, map, name).unwrap();
    let (local0, _) = rt.frame(0);
    for (j, r) in local0.iter().enumerate() {
        assert!(max_diff9(r, &identity()) < 1e-12, "{name}: T-pose joint {j} is not identity");
    }
    let rest = rt.pivots(0);
    let mut worst = 0.0f64;
    for f in 0..bvh.frames {
        let (local, t) = rt.frame(f);
        let fk = smpl_joint_positions(&local, &rest, t);
        let piv = rt.pivots(f);
        for j in 0..NUM_JOINTS {
            for i in 0..3 {
                worst = worst.max((fk[j][i] - piv[j][i]).abs());
            }
        }
    }
    println!("{name}: {} frames, FK vs pivots max error {worst:.3e} m", bvh.frames);
    assert!(worst < 1e-6, "{name}: FK misses the pivots by {worst} m");
}

#[test]
fn real_cmu_fk_reproduces_pivots() {
    for rel in ["cmu/01/01_09.bvh", "cmu/02/02_05.bvh", "cmu/05/05_06.bvh", "cmu/09/09_01.bvh"] {
        let Some(b) = real_bvh(rel) else { return };
        assert_eq!(detect(&b).map(|m| m.name), Some("cmu"));
        check_exact(&b, &CMU, rel);
    }
}

#[test]
fn real_blank_frames_are_dropped() {
    // 09_10 frames 1-4 have every rotation channel at zero (missing data): at 30 fps BVH frame
    // 1 would be the first pose; it is left out.
    let Some(b) = real_bvh("cmu/09/09_10.bvh") else { return };
    let rt = Retarget::new(&b, &CMU, "09_10").unwrap();
    assert!((1..5).all(|f| rt.is_blank(f)) && !rt.is_blank(5) && !rt.is_blank(0));
    let c = rt.clip("09_10", 30.0).unwrap();
    assert_eq!(c.num_frames(), (b.frames - 1).div_ceil(4) - 1);
    let (local, _) = rt.frame(5);
    let got: [f64; 9] = c.rotations[0].map(|x| x as f64);
    assert!(max_diff9(&got, &local[0]) < 1e-6);
}

#[test]
fn real_daz_fk_reproduces_pivots() {
    for rel in ["cmu-daz/salsa/01.bvh", "cmu-daz/martial/06.bvh", "cmu-daz/indian/04.bvh"] {
        let Some(b) = real_bvh(rel) else { return };
        assert_eq!(detect(&b).map(|m| m.name), Some("daz"));
        check_exact(&b, &DAZ, rel);
    }
}

#[test]
fn real_clip_is_every_fourth_frame_in_f32() {
    let Some(b) = real_bvh("cmu/02/02_05.bvh") else { return };
    let rt = Retarget::new(&b, &CMU, "02_05").unwrap();
    assert_eq!(rt.step(30.0), 4);
    let c = rt.clip("02_05", 30.0).unwrap();
    assert_eq!(c.num_frames(), (b.frames - 1).div_ceil(4));
    let rest = rt.pivots(0);
    for k in [0, 1, c.num_frames() / 2, c.num_frames() - 1] {
        let (local, t) = rt.frame(1 + 4 * k);
        for j in 0..NUM_JOINTS {
            let got: [f64; 9] = c.rotations[k * NUM_JOINTS + j].map(|x| x as f64);
            assert!(max_diff9(&got, &local[j]) < 1e-6, "pose {k} joint {j}");
        }
        let tf: [f64; 3] = c.translations[k].map(|x| x as f64);
        assert!(close3(tf, t, 1e-5), "pose {k}: {tf:?} vs {t:?}");
        // The f32 clip itself reproduces the pivots to f32 precision.
        let l32: [[f64; 9]; NUM_JOINTS] = std::array::from_fn(|j| c.rotations[k * NUM_JOINTS + j].map(|x| x as f64));
        let fk = smpl_joint_positions(&l32, &rest, tf);
        let piv = rt.pivots(1 + 4 * k);
        for j in 0..NUM_JOINTS {
            assert!(close3(fk[j], piv[j], 2e-5), "pose {k} joint {j}: {:?} vs {:?}", fk[j], piv[j]);
        }
    }
}

/// The T-pose pivots in metres, oriented as SMPL: Y up, facing +Z, the left side at +X; body
/// proportions of an adult (so the units are right). Prints how far the upper arms hang below
/// horizontal (CMU: about 8 degrees, reference/mocap.md).
#[test]
fn real_tpose_is_smpl_oriented_in_metres() {
    for (rel, map) in [("cmu/02/02_05.bvh", &CMU), ("cmu-daz/salsa/01.bvh", &DAZ)] {
        let Some(b) = real_bvh(rel) else { return };
        let p = Retarget::new(&b, map, rel).unwrap().pivots(0);
        let d = |a: usize, b: usize| -> [f64; 3] { std::array::from_fn(|i| p[b][i] - p[a][i]) };
        let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        // Left hip, knee, shoulder at +X of their right twins.
        for (l, r) in [(1, 2), (4, 5), (16, 17), (20, 21)] {
            assert!(p[l][0] - p[r][0] > 0.1, "{rel}: joint {l} not left of {r}: {:?} {:?}", p[l], p[r]);
        }
        // Toes in front of the ankles (+Z), head above the pelvis (+Y).
        assert!(d(7, 10)[2] > 0.05 && d(8, 11)[2] > 0.05, "{rel}: feet do not point +Z");
        assert!(d(0, 15)[1] > 0.3, "{rel}: head not above pelvis");
        // Leg (hip -> knee -> ankle) and pelvis-to-head lengths of an adult, in metres.
        let leg = norm(d(1, 4)) + norm(d(4, 7));
        let trunk = d(0, 15)[1];
        assert!((0.65..1.0).contains(&leg), "{rel}: leg {leg} m");
        assert!((0.25..0.8).contains(&trunk), "{rel}: pelvis to head {trunk} m");
        let arm = d(16, 18);
        let below = (-arm[1]).atan2((arm[0] * arm[0] + arm[2] * arm[2]).sqrt()).to_degrees();
        println!("{rel}: leg {leg:.3} m, pelvis to head {trunk:.3} m, upper arm {below:.1} deg below horizontal");
    }
}
