//! BVH motion capture files: the hierarchy (joints, offsets, channels), the motion (one row of
//! channel values per frame) and forward kinematics.
//!
//! Format (Biovision BVH, as written by MotionBuilder, Daz and the CMU conversions):
//!
//! ```text
//! HIERARCHY
//! ROOT Hips
//! {
//!     OFFSET 0 0 0
//!     CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
//!     JOINT Spine
//!     {
//!         OFFSET 0 2 0
//!         CHANNELS 3 Zrotation Yrotation Xrotation
//!         End Site
//!         {
//!             OFFSET 0 1 0
//!         }
//!     }
//! }
//! MOTION
//! Frames: 2
//! Frame Time: .0083333
//! 0 0 0 0 0 0 0 0 0
//! 1 0 0 90 0 0 0 0 0
//! ```
//!
//! Conventions (the de-facto standard, which every CMU and Daz file follows):
//! - A joint's local transform is `T(offset + position channels) * R`, where `R` is the product of
//!   the elementary rotations in the order the CHANNELS line lists them (intrinsic rotations):
//!   `Zrotation Yrotation Xrotation` gives `R = Rz * Ry * Rx`. Angles are in degrees.
//! - Global: `G[j] = G[parent] * R[j]`, `pos[j] = pos[parent] + G[parent] * (offset[j] + t[j])`.
//! - Each motion row holds the channels of every joint, joint by joint in file order.
//!
//! Line endings may be LF or CRLF. Errors name the file and the line.

use std::path::Path;

use crate::error::{Error, Result};
use crate::geom::rot::{identity, mat3_apply, mat3_mul};

/// One channel of a joint: a translation or a rotation about one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Xposition,
    Yposition,
    Zposition,
    Xrotation,
    Yrotation,
    Zrotation,
}

impl Channel {
    /// The channel named `s` (case-insensitive), or `None`.
    pub fn parse(s: &str) -> Option<Channel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "xposition" => Channel::Xposition,
            "yposition" => Channel::Yposition,
            "zposition" => Channel::Zposition,
            "xrotation" => Channel::Xrotation,
            "yrotation" => Channel::Yrotation,
            "zrotation" => Channel::Zrotation,
            _ => return None,
        })
    }

    /// The axis: 0 for X, 1 for Y, 2 for Z.
    pub fn axis(self) -> usize {
        match self {
            Channel::Xposition | Channel::Xrotation => 0,
            Channel::Yposition | Channel::Yrotation => 1,
            Channel::Zposition | Channel::Zrotation => 2,
        }
    }

    /// Whether the channel is a rotation (else a translation).
    pub fn is_rotation(self) -> bool {
        matches!(self, Channel::Xrotation | Channel::Yrotation | Channel::Zrotation)
    }

    /// The name as BVH writes it.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Xposition => "Xposition",
            Channel::Yposition => "Yposition",
            Channel::Zposition => "Zposition",
            Channel::Xrotation => "Xrotation",
            Channel::Yrotation => "Yrotation",
            Channel::Zrotation => "Zrotation",
        }
    }
}

/// One joint (ROOT or JOINT) of the hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub struct BvhJoint {
    pub name: String,
    /// Index of the parent joint in [`Bvh::joints`]; `None` for a root. A parent always comes
    /// before its children.
    pub parent: Option<usize>,
    /// Offset from the parent's pivot, in the parent's frame, in file units `[3]`.
    pub offset: [f64; 3],
    /// The joint's channels in file order (0 to 6, each at most once).
    pub channels: Vec<Channel>,
    /// The offset of the joint's `End Site` (the tip of a chain), if it has one `[3]`.
    pub end_site: Option<[f64; 3]>,
}

/// A parsed BVH file.
#[derive(Clone, Debug, PartialEq)]
pub struct Bvh {
    /// Joints in file order (depth first; a parent precedes its children).
    pub joints: Vec<BvhJoint>,
    /// Seconds per frame, as the file gives it (`Frame Time`).
    pub frame_time: f64,
    /// Number of frames.
    pub frames: usize,
    /// Channel values `[frames, num_channels]`, row-major: each row holds every joint's
    /// channels, joint by joint in file order. Positions in file units, rotations in degrees.
    pub data: Vec<f64>,
}

/// A token of the hierarchy with its 1-based line number.
struct Tok<'a> {
    s: &'a str,
    line: usize,
}

fn err(origin: &str, line: usize, what: impl std::fmt::Display) -> Error {
    Error::Input(format!("{origin}, line {line}: {what}"))
}

fn parse_num(origin: &str, line: usize, s: &str, what: &str) -> Result<f64> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(err(origin, line, format!("{what}: `{s}` is not a finite number"))),
        Err(_) => Err(err(origin, line, format!("{what}: `{s}` is not a number"))),
    }
}

struct Parser<'a, 'o> {
    toks: Vec<Tok<'a>>,
    pos: usize,
    origin: &'o str,
    /// Line number of the end of the hierarchy (the MOTION line, or the last line).
    end_line: usize,
}

impl<'a> Parser<'a, '_> {
    fn next(&mut self, expected: &str) -> Result<&Tok<'a>> {
        let t = self.toks.get(self.pos).ok_or_else(|| {
            err(self.origin, self.end_line, format!("hierarchy ends early: expected {expected}"))
        })?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, word: &str) -> Result<usize> {
        let origin = self.origin;
        let t = self.next(&format!("`{word}`"))?;
        if t.s != word {
            return Err(err(origin, t.line, format!("expected `{word}`, found `{}`", t.s)));
        }
        Ok(t.line)
    }

    fn vec3(&mut self, what: &str) -> Result<[f64; 3]> {
        let mut v = [0.0; 3];
        for x in v.iter_mut() {
            let origin = self.origin;
            let t = self.next(&format!("three numbers after {what}"))?;
            *x = parse_num(origin, t.line, t.s, what)?;
        }
        Ok(v)
    }

    /// Parses a joint body after its name: `{ OFFSET .. CHANNELS .. (JOINT | End Site)* }`.
    fn joint(&mut self, name: &str, name_line: usize, parent: Option<usize>, joints: &mut Vec<BvhJoint>) -> Result<()> {
        let open = self.expect("{")?;
        let me = joints.len();
        joints.push(BvhJoint { name: name.to_string(), parent, offset: [0.0; 3], channels: Vec::new(), end_site: None });
        let (mut has_offset, mut has_channels) = (false, false);
        loop {
            let origin = self.origin;
            let t = match self.toks.get(self.pos) {
                Some(t) => t,
                None => {
                    return Err(err(
                        origin,
                        self.end_line,
                        format!("joint `{name}` (opened at line {open}) is missing its closing `}}`"),
                    ))
                }
            };
            let (word, line) = (t.s, t.line);
            self.pos += 1;
            match word {
                "OFFSET" => {
                    joints[me].offset = self.vec3("OFFSET")?;
                    has_offset = true;
                }
                "CHANNELS" => {
                    let n = self.next("the channel count after CHANNELS")?;
                    let count: usize = n.s.parse().map_err(|_| {
                        err(origin, n.line, format!("CHANNELS: `{}` is not a channel count", n.s))
                    })?;
                    if count > 6 {
                        return Err(err(origin, n.line, format!("CHANNELS: {count} channels, at most 6 allowed")));
                    }
                    let mut ch = Vec::with_capacity(count);
                    for _ in 0..count {
                        let t = self.next(&format!("{count} channel names after CHANNELS"))?;
                        let c = Channel::parse(t.s).ok_or_else(|| {
                            err(
                                origin,
                                t.line,
                                format!(
                                    "unknown channel `{}` (expected Xposition, Yposition, Zposition, \
                                     Xrotation, Yrotation or Zrotation)",
                                    t.s
                                ),
                            )
                        })?;
                        if ch.contains(&c) {
                            return Err(err(origin, t.line, format!("channel `{}` listed twice", t.s)));
                        }
                        ch.push(c);
                    }
                    joints[me].channels = ch;
                    has_channels = true;
                }
                "JOINT" => {
                    let n = self.next("a joint name after JOINT")?;
                    let (child, child_line) = (n.s, n.line);
                    self.joint(child, child_line, Some(me), joints)?;
                }
                "End" => {
                    self.expect("Site")?;
                    self.expect("{")?;
                    self.expect("OFFSET")?;
                    let v = self.vec3("End Site OFFSET")?;
                    self.expect("}")?;
                    if joints[me].end_site.is_some() {
                        return Err(err(origin, line, format!("joint `{name}` has a second End Site")));
                    }
                    joints[me].end_site = Some(v);
                }
                "}" => break,
                "MOTION" => {
                    return Err(err(
                        origin,
                        line,
                        format!("MOTION inside joint `{name}` (opened at line {open}): missing `}}`"),
                    ))
                }
                other => {
                    return Err(err(
                        origin,
                        line,
                        format!("unexpected `{other}` in joint `{name}` (expected OFFSET, CHANNELS, JOINT, End Site or `}}`)"),
                    ))
                }
            }
        }
        if !has_offset {
            return Err(err(self.origin, name_line, format!("joint `{name}` has no OFFSET")));
        }
        if !has_channels {
            return Err(err(self.origin, name_line, format!("joint `{name}` has no CHANNELS")));
        }
        Ok(())
    }
}

impl Bvh {
    /// Reads and parses the BVH file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Bvh> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Bvh::parse(&text, &path.display().to_string())
    }

    /// Parses BVH text; `origin` (a file name) prefixes every error message.
    pub fn parse(text: &str, origin: &str) -> Result<Bvh> {
        // Split into the hierarchy and the motion at the line that starts with MOTION.
        let mut toks = Vec::new();
        let mut motion_line = None;
        let mut lines = text.lines().enumerate();
        for (i, line) in lines.by_ref() {
            let mut words = line.split_whitespace().peekable();
            if words.peek() == Some(&"MOTION") {
                motion_line = Some(i + 1);
                if line.split_whitespace().count() > 1 {
                    return Err(err(origin, i + 1, "unexpected text after MOTION"));
                }
                break;
            }
            toks.extend(words.map(|s| Tok { s, line: i + 1 }));
        }
        let nlines = text.lines().count();
        let end_line = motion_line.unwrap_or(nlines.max(1));
        let mut p = Parser { toks, pos: 0, origin, end_line };

        // HIERARCHY and the roots.
        match p.toks.first() {
            Some(t) if t.s == "HIERARCHY" => p.pos = 1,
            Some(t) => return Err(err(origin, t.line, format!("expected HIERARCHY, found `{}`", t.s))),
            None => return Err(err(origin, 1, "empty file: expected HIERARCHY")),
        }
        let mut joints = Vec::new();
        while p.pos < p.toks.len() {
            let t = &p.toks[p.pos];
            let (word, line) = (t.s, t.line);
            p.pos += 1;
            match word {
                "ROOT" => {
                    let n = p.next("a joint name after ROOT")?;
                    let (name, nl) = (n.s, n.line);
                    p.joint(name, nl, None, &mut joints)?;
                }
                "}" => return Err(err(origin, line, "unexpected `}` (no joint is open)")),
                other => return Err(err(origin, line, format!("expected ROOT or MOTION, found `{other}`"))),
            }
        }
        if joints.is_empty() {
            return Err(err(origin, end_line, "the hierarchy has no ROOT joint"));
        }
        let Some(motion_line) = motion_line else {
            return Err(err(origin, end_line, "no MOTION section"));
        };
        let nch: usize = joints.iter().map(|j| j.channels.len()).sum();

        // MOTION header: `Frames: N` and `Frame Time: t` (the colon may touch the number).
        let mut header = |key: &str| -> Result<(String, usize)> {
            for (i, line) in lines.by_ref() {
                let l = line.trim();
                if l.is_empty() {
                    continue;
                }
                let Some(rest) = l.strip_prefix(key) else {
                    return Err(err(origin, i + 1, format!("expected `{key}`, found `{l}`")));
                };
                return Ok((rest.trim().to_string(), i + 1));
            }
            Err(err(origin, nlines, format!("file ends before `{key}`")))
        };
        let (frames_s, frames_line) = header("Frames:")?;
        let frames: usize = frames_s
            .parse()
            .map_err(|_| err(origin, frames_line, format!("Frames: `{frames_s}` is not a frame count")))?;
        let (ft_s, ft_line) = header("Frame Time:")?;
        let frame_time = parse_num(origin, ft_line, &ft_s, "Frame Time")?;
        if frame_time <= 0.0 {
            return Err(err(origin, ft_line, format!("Frame Time must be positive, found {frame_time}")));
        }

        // Rows: one frame per non-empty line, `nch` numbers each.
        let mut data = Vec::with_capacity(frames.saturating_mul(nch).min(text.len() / 2 + 1));
        let mut row = 0usize;
        let mut last_line = motion_line;
        for (i, line) in lines {
            last_line = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            if row == frames {
                return Err(err(origin, i + 1, format!("more motion rows than `Frames: {frames}` (line {frames_line})")));
            }
            let start = data.len();
            for w in line.split_whitespace() {
                if data.len() - start == nch {
                    data.push(0.0);
                    break;
                }
                data.push(parse_num(origin, i + 1, w, &format!("frame {row}"))?);
            }
            let n = data.len() - start;
            if n != nch {
                let found = if n > nch { format!("more than {nch}") } else { n.to_string() };
                return Err(err(origin, i + 1, format!("frame {row} has {found} values, expected {nch} (one per channel)")));
            }
            row += 1;
        }
        if row != frames {
            return Err(err(
                origin,
                last_line,
                format!("truncated motion: `Frames: {frames}` (line {frames_line}) but the file ends after {row} rows"),
            ));
        }
        Ok(Bvh { joints, frame_time, frames, data })
    }

    /// Total number of channels (values per motion row).
    pub fn num_channels(&self) -> usize {
        self.joints.iter().map(|j| j.channels.len()).sum()
    }

    /// Index of the joint named `name`, if any.
    pub fn joint_index(&self, name: &str) -> Option<usize> {
        self.joints.iter().position(|j| j.name == name)
    }

    /// The channel values of frame `f` `[num_channels]`.
    ///
    /// # Panics
    /// If `f >= frames`.
    pub fn frame(&self, f: usize) -> &[f64] {
        let n = self.num_channels();
        &self.data[f * n..(f + 1) * n]
    }

    /// Frame rate in frames per second (`1 / frame_time`).
    pub fn fps(&self) -> f64 {
        1.0 / self.frame_time
    }

    /// Forward kinematics of frame `f`: each joint's global rotation (row-major `[9]`, maps the
    /// joint's frame to the world) and pivot position (file units), in joint order `[J]`.
    ///
    /// # Panics
    /// If `f >= frames`, or if a joint's parent comes after it (never for a parsed file).
    pub fn global_transforms(&self, f: usize) -> Vec<([f64; 9], [f64; 3])> {
        let row = self.frame(f);
        let mut out: Vec<([f64; 9], [f64; 3])> = Vec::with_capacity(self.joints.len());
        let mut k = 0;
        for (j, joint) in self.joints.iter().enumerate() {
            let mut r = identity::<f64>();
            let mut t = joint.offset;
            for &c in &joint.channels {
                let v = row[k];
                k += 1;
                if c.is_rotation() {
                    r = mat3_mul(&r, &axis_rotation(c.axis(), v.to_radians()));
                } else {
                    t[c.axis()] += v;
                }
            }
            let g = match joint.parent {
                None => (r, t),
                Some(p) => {
                    assert!(p < j, "BVH joint {j} has parent {p} after it");
                    let (gr, gp) = &out[p];
                    let d = mat3_apply(gr, &t);
                    (mat3_mul(gr, &r), [gp[0] + d[0], gp[1] + d[1], gp[2] + d[2]])
                }
            };
            out.push(g);
        }
        out
    }

    /// World position of joint `j`'s End Site given the frame's [`Bvh::global_transforms`]
    /// (`None` if the joint has no End Site).
    pub fn end_site_position(&self, transforms: &[([f64; 9], [f64; 3])], j: usize) -> Option<[f64; 3]> {
        let e = self.joints.get(j)?.end_site?;
        let (r, p) = transforms.get(j)?;
        let d = mat3_apply(r, &e);
        Some([p[0] + d[0], p[1] + d[1], p[2] + d[2]])
    }
}

/// Rotation by `a` radians about axis 0 (X), 1 (Y) or 2 (Z), row-major, right-handed.
pub fn axis_rotation(axis: usize, a: f64) -> [f64; 9] {
    let (s, c) = a.sin_cos();
    match axis {
        0 => [1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c],
        1 => [c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c],
        _ => [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0],
    }
}
