//! 2D keypoint files -> OpenPose BODY_25, the keypoint layout the fit consumes.
//!
//! Every reader maps its source layout into the 25 BODY_25 slots
//! ([`crate::body::BODY25_NAMES`]); each slot is `[x px, y px, confidence]` and a confidence of 0
//! means "missing" (its x, y are then 0 too). Image pixels: x right, y down, origin at the top-left
//! corner of the image.
//!
//! | [`Format`] | file | layout | confidence |
//! |---|---|---|---|
//! | `OpenPose` | `--write_json`: one file per frame, `people[].pose_keypoints_2d` | BODY_25 (75 numbers) or COCO_18 (54 numbers) | as written; `0,0,0` = missing |
//! | `Coco` | COCO keypoint annotations (`images`, `annotations`, `categories`), or a COCO results list (`[{image_id, keypoints, score}]`) | COCO-17, plus the 6 COCO-WholeBody `foot_kpts` when present | v=2 -> 1.0, v=1 (occluded) -> [`COCO_OCCLUDED_CONFIDENCE`] = 0.5, v=0 -> 0; results: the per-keypoint score |
//! | `MmPose` | MMPose 1.x predictions (`--save-predictions` / the inferencer's `pred_out_dir`) | COCO-17 (17 points), Halpe-26 (26: COCO-17 + feet) or COCO-WholeBody (133) | `keypoint_scores` |
//! | `MediaPipe` | the rigfit MediaPipe Pose schema below | 33 landmarks | `visibility` |
//!
//! Derived points. COCO-17 has no Neck and no MidHip: like ScoreHMR's demo (demo_image.py
//! L113-116, `op[[0,16,15,18,17,5,2,6,3,7,4,12,9,13,10,14,11]] = coco[0..16]`) the COCO and MMPose
//! readers leave Neck (1), MidHip (8) and, without WholeBody or Halpe feet, the 6 foot points
//! (19-24) at confidence 0 (Halpe-26's own head, neck and hip points are not used). OpenPose COCO_18 has its own Neck but no MidHip (left at 0). The MediaPipe reader
//! does derive them: Neck = midpoint of the shoulders and MidHip = midpoint of the hips, each with
//! the smaller of the two confidences.
//!
//! Frames. A [`KeypointSequence`] holds its frames sorted by frame number and consecutive: a frame
//! number that the file skips (an OpenPose folder with a missing file) becomes a frame with no
//! people. OpenPose per-frame files take their frame number from the last run of digits in the
//! file name (`video_000000000012_keypoints.json` -> 12); MMPose video predictions use
//! `frame_id` as written (the demo script counts from 1, the inferencer from 0); COCO frames are
//! the images sorted by image id, numbered from 0.
//!
//! # The rigfit MediaPipe Pose schema
//!
//! MediaPipe has no standard file format, so rigfit reads this one (also in docs/keypoints.md):
//!
//! ```json
//! {"format": "mediapipe_pose",
//!  "image_size": [1920, 1080],
//!  "fps": 30,
//!  "frames": [
//!    {"frame": 0,
//!     "people": [
//!       {"track_id": 0,
//!        "landmarks": [[0.51, 0.22, -0.31, 0.99], "... 33 landmarks in MediaPipe order ..."]}]}]}
//! ```
//!
//! - `format` (required): the string `"mediapipe_pose"`.
//! - `image_size` (optional in the file): `[width, height]` in pixels. MediaPipe's `x`, `y` are
//!   normalised to the image (0..1), so the size must come from the file or from the `image_size`
//!   argument of [`read`]; when both are given they must agree.
//! - `fps` (optional): frames per second, a positive number.
//! - `frames[].frame`: the frame number (integer >= 0); `frames[].people`: a list (may be empty).
//! - `people[].track_id` (optional, integer or null): the same person keeps the same id.
//! - `people[].landmarks`: exactly 33 landmarks in MediaPipe Pose order (0 nose ... 32
//!   right_foot_index), each either `[x, y, z, visibility]` or `[x, y, z, visibility, presence]`,
//!   or an object `{"x": .., "y": .., "z": .., "visibility": ..}` (`z`, `presence` optional and
//!   ignored). `x * width`, `y * height` give pixels; `visibility` is the confidence (clamped to
//!   [0, 1]).
//!
//! Map to BODY_25 ([`MEDIAPIPE_TO_BODY25`]): nose, eyes (MediaPipe 2 left_eye and 5 right_eye, not
//! the inner/outer corners), ears, shoulders, elbows, wrists, hips, knees, ankles, heels, and
//! foot_index -> big toe. Neck (1) = midpoint of the shoulders (11, 12) and MidHip (8) = midpoint
//! of the hips (23, 24), with confidence = min of the two. The small toes (20, 23) stay missing.
//! Note that MediaPipe's hip points sit higher and wider than OpenPose's; they are used as they
//! are.
//!
//! # Errors
//!
//! A file that does not follow its format gives [`Error::Input`] naming the file, the field as a
//! JSON path (`people[2].pose_keypoints_2d`) and what was expected ("75 (BODY_25) or 54 (COCO_18)
//! numbers, found 52"). A file that cannot be read gives [`Error::Io`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::body::NUM_BODY25;
use crate::error::{Error, Result};

/// One person's BODY_25 keypoints `[25, 3]`: `[x px, y px, confidence]`, confidence 0 = missing.
pub type Body25 = [[f32; 3]; NUM_BODY25];

/// BODY_25 slot of each COCO-17 keypoint (ScoreHMR demo_image.py L113-116:
/// `op[[0,16,15,18,17,5,2,6,3,7,4,12,9,13,10,14,11]] = coco[0..16]`).
pub const COCO17_TO_BODY25: [usize; 17] = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11];

/// BODY_25 slot of each OpenPose COCO_18 keypoint (OpenPose `POSE_COCO_BODY_PARTS`: Nose, Neck,
/// RShoulder, RElbow, RWrist, LShoulder, LElbow, LWrist, RHip, RKnee, RAnkle, LHip, LKnee, LAnkle,
/// REye, LEye, REar, LEar). MidHip (8) and the feet have no COCO_18 source.
pub const COCO18_TO_BODY25: [usize; 18] = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];

/// BODY_25 slot of each COCO-WholeBody foot point (WholeBody indices 17-22: left big toe, left
/// small toe, left heel, right big toe, right small toe, right heel).
pub const WHOLEBODY_FOOT_TO_BODY25: [usize; 6] = [19, 20, 21, 22, 23, 24];

/// `(Halpe-26 keypoint, BODY_25 slot)` pairs for the Halpe-26 feet (mmpose
/// configs/_base_/datasets/halpe26.py: 20 left_big_toe, 21 right_big_toe, 22 left_small_toe,
/// 23 right_small_toe, 24 left_heel, 25 right_heel). Halpe's head (17), neck (18) and hip (19)
/// are not used: they are annotated points, not OpenPose's shoulder / hip midpoints.
pub const HALPE26_FEET_TO_BODY25: [(usize, usize); 6] = [(20, 19), (21, 22), (22, 20), (23, 23), (24, 21), (25, 24)];

/// `(MediaPipe landmark, BODY_25 slot)` pairs of the direct MediaPipe Pose map (Neck and MidHip are
/// derived, the small toes are missing; see the module docs).
pub const MEDIAPIPE_TO_BODY25: [(usize, usize); 21] = [
    (0, 0),   // nose
    (12, 2),  // right_shoulder
    (14, 3),  // right_elbow
    (16, 4),  // right_wrist
    (11, 5),  // left_shoulder
    (13, 6),  // left_elbow
    (15, 7),  // left_wrist
    (24, 9),  // right_hip
    (26, 10), // right_knee
    (28, 11), // right_ankle
    (23, 12), // left_hip
    (25, 13), // left_knee
    (27, 14), // left_ankle
    (5, 15),  // right_eye
    (2, 16),  // left_eye
    (8, 17),  // right_ear
    (7, 18),  // left_ear
    (31, 19), // left_foot_index -> LBigToe
    (29, 21), // left_heel
    (32, 22), // right_foot_index -> RBigToe
    (30, 24), // right_heel
];

/// Confidence given to a COCO keypoint annotated as occluded (v = 1); visible (v = 2) gets 1.0.
/// rigfit's choice: an occluded point was still placed by an annotator, but less precisely.
pub const COCO_OCCLUDED_CONFIDENCE: f32 = 0.5;

/// The most frames one sequence may span (first to last frame number): 10 hours at 30 fps.
pub const MAX_FRAME_SPAN: usize = 1_080_000;

/// A keypoint file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenPose `--write_json` (BODY_25 or COCO_18), one file per frame.
    OpenPose,
    /// COCO keypoint annotations (COCO-17, optional COCO-WholeBody feet).
    Coco,
    /// MMPose 1.x prediction JSON (COCO-17, Halpe-26 or COCO-WholeBody-133).
    MmPose,
    /// The rigfit MediaPipe Pose schema (33 landmarks, normalised coordinates).
    MediaPipe,
}

impl Format {
    /// Every format, in the order [`detect`] tries them.
    pub const ALL: [Format; 4] = [Format::OpenPose, Format::Coco, Format::MmPose, Format::MediaPipe];

    /// The name used on the command line and in messages: `openpose`, `coco`, `mmpose`,
    /// `mediapipe`.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenPose => "openpose",
            Format::Coco => "coco",
            Format::MmPose => "mmpose",
            Format::MediaPipe => "mediapipe",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "openpose" => Ok(Format::OpenPose),
            "coco" => Ok(Format::Coco),
            "mmpose" => Ok(Format::MmPose),
            "mediapipe" | "mediapipe_pose" => Ok(Format::MediaPipe),
            _ => Err(Error::Input(format!(
                "unknown keypoint format `{s}` (expected openpose, coco, mmpose or mediapipe)"
            ))),
        }
    }
}

/// One detected or annotated person in one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// The tracker's / annotator's id of this person, the same across frames; None when the
    /// source has none.
    pub track_id: Option<i64>,
    /// BODY_25 keypoints `[25, 3]`: x px, y px, confidence (0 = missing).
    pub keypoints: Body25,
}

impl Person {
    /// A person with every keypoint missing.
    pub fn empty(track_id: Option<i64>) -> Self {
        Self { track_id, keypoints: [[0.0; 3]; NUM_BODY25] }
    }

    /// Bounding box of the present keypoints (confidence > 0), `[x_min, y_min, x_max, y_max]`
    /// in pixels; None when no keypoint is present.
    pub fn bbox(&self) -> Option<[f32; 4]> {
        let mut b: Option<[f32; 4]> = None;
        for k in self.keypoints.iter().filter(|k| k[2] > 0.0) {
            b = Some(match b {
                None => [k[0], k[1], k[0], k[1]],
                Some(b) => [b[0].min(k[0]), b[1].min(k[1]), b[2].max(k[0]), b[3].max(k[1])],
            });
        }
        b
    }

    /// Mean confidence over all 25 slots (missing slots count as 0), so a person with more
    /// detected joints ranks higher.
    pub fn mean_confidence(&self) -> f32 {
        self.keypoints.iter().map(|k| k[2]).sum::<f32>() / NUM_BODY25 as f32
    }

    /// Number of present keypoints (confidence > 0).
    pub fn num_present(&self) -> usize {
        self.keypoints.iter().filter(|k| k[2] > 0.0).count()
    }
}

/// The people seen in one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct KeypointFrame {
    /// Frame number (see the module docs for where it comes from in each format).
    pub frame: usize,
    pub people: Vec<Person>,
}

/// Keypoints over time, in BODY_25.
#[derive(Clone, Debug, PartialEq)]
pub struct KeypointSequence {
    /// Frames sorted by frame number, consecutive (skipped numbers are frames with no people).
    pub frames: Vec<KeypointFrame>,
    /// Image `(width, height)` in pixels, when the file or the caller gave it.
    pub image_size: Option<(u32, u32)>,
    /// Frames per second, when the file gave it (only the MediaPipe schema has it).
    pub fps: Option<f32>,
    /// The format the keypoints were read from.
    pub source: Format,
}

impl KeypointSequence {
    /// Builds a sequence: sorts `frames` by frame number and inserts empty frames for numbers the
    /// input skips. `origin` names the input in errors (two frames with one number; a span of
    /// more than [`MAX_FRAME_SPAN`] frames).
    pub fn from_frames(
        mut frames: Vec<KeypointFrame>,
        image_size: Option<(u32, u32)>,
        fps: Option<f32>,
        source: Format,
        origin: &str,
    ) -> Result<Self> {
        frames.sort_by_key(|f| f.frame);
        for w in frames.windows(2) {
            if w[0].frame == w[1].frame {
                return Err(Error::Input(format!("{origin}: frame {} appears twice", w[0].frame)));
            }
        }
        if let (Some(first), Some(last)) = (frames.first(), frames.last()) {
            let span = last.frame - first.frame + 1;
            if span > MAX_FRAME_SPAN {
                return Err(Error::Input(format!(
                    "{origin}: frame numbers run from {} to {} ({span} frames; at most {MAX_FRAME_SPAN})",
                    first.frame, last.frame
                )));
            }
            if span != frames.len() {
                let start = first.frame;
                let mut filled: Vec<KeypointFrame> =
                    (0..span).map(|i| KeypointFrame { frame: start + i, people: Vec::new() }).collect();
                for f in frames {
                    let i = f.frame - start;
                    filled[i] = f;
                }
                frames = filled;
            }
        }
        Ok(Self { frames, image_size, fps, source })
    }

    /// The distinct track ids in the sequence, sorted.
    pub fn track_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> =
            self.frames.iter().flat_map(|f| f.people.iter().filter_map(|p| p.track_id)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// One person over time: one entry per element of `frames`, `[F][25, 3]`.
    ///
    /// With `Some(id)`, the person with that track id in each frame (the most confident if a
    /// frame has several with that id); None in frames where it is absent. The id must appear in
    /// at least one frame. With `None`, the single or the most confident person
    /// ([`Person::mean_confidence`], the first on a tie) of each frame; without track ids this
    /// may switch between people from frame to frame. People with no present keypoint are never
    /// chosen.
    pub fn track(&self, id: Option<i64>) -> Result<Vec<Option<Body25>>> {
        if let Some(id) = id {
            if !self.frames.iter().any(|f| f.people.iter().any(|p| p.track_id == Some(id))) {
                return Err(Error::Input(format!(
                    "track id {id} appears in no frame (track ids present: {:?})",
                    self.track_ids()
                )));
            }
        }
        Ok(self
            .frames
            .iter()
            .map(|f| {
                f.people
                    .iter()
                    .filter(|p| id.is_none_or(|id| p.track_id == Some(id)) && p.num_present() > 0)
                    // min_by with the order reversed: the first of the most confident.
                    .min_by(|a, b| b.mean_confidence().total_cmp(&a.mean_confidence()))
                    .map(|p| p.keypoints)
            })
            .collect())
    }
}

/// Reads 2D keypoints from `path` into BODY_25.
///
/// `path` is a JSON file, a folder of per-frame JSON files (OpenPose `--write_json`, or MMPose
/// per-image predictions), or a pattern with `*` / `?` in its file name (`out/video_*_keypoints.json`).
/// Per-frame files are ordered by the last number in their names. `format` None detects it
/// ([`detect`]). `image_size` `(width, height)` pixels: needed by the MediaPipe schema when the
/// file lacks it, recorded otherwise; it must agree with a size the file gives.
pub fn read(path: impl AsRef<Path>, format: Option<Format>, image_size: Option<(u32, u32)>) -> Result<KeypointSequence> {
    let path = path.as_ref();
    let (files, many) = list_inputs(path)?;
    if !many {
        let file = &files[0];
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let doc = Doc::new(file);
        let root = doc.parse(&bytes)?;
        let format = match format {
            Some(f) => f,
            None => doc.detect(&root)?,
        };
        return read_value(&doc, &root, format, image_size);
    }
    let origin = path.display().to_string();
    let mut frames = Vec::with_capacity(files.len());
    let mut source = format;
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let doc = Doc::new(file);
        let root = doc.parse(&bytes)?;
        let f = match source {
            Some(f) => f,
            None => {
                let f = doc.detect(&root)?;
                source = Some(f);
                f
            }
        };
        let number = frame_number(file).ok_or_else(|| {
            Error::Input(format!("{}: a per-frame file needs a frame number in its name", file.display()))
        })?;
        let people = match f {
            Format::OpenPose => parse_openpose(&doc, &root)?,
            Format::MmPose => match parse_mmpose(&doc, &root)? {
                MmPose::Image(people) => people,
                MmPose::Video(_) => {
                    return Err(doc.err("", "one image's predictions (a per-frame file in a folder), found a video's frames"))
                }
            },
            other => {
                return Err(Error::Input(format!(
                    "{}: a folder or pattern holds per-frame files (openpose or mmpose), not {other}",
                    file.display()
                )))
            }
        };
        frames.push(KeypointFrame { frame: number, people });
    }
    let source = source.expect("at least one file");
    KeypointSequence::from_frames(frames, image_size, None, source, &origin)
}

/// Detects the format of one keypoint file from its content (`path` names it in errors).
///
/// - an object with `people` -> OpenPose;
/// - an object with `"format": "mediapipe_pose"` -> MediaPipe;
/// - an object with `annotations`, or a list of results with `image_id` -> COCO;
/// - an object with `instance_info`, or a top-level list (of `{frame_id, instances}` or of
///   instances) -> MMPose.
pub fn detect(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Format> {
    let doc = Doc::new(path.as_ref());
    let root = doc.parse(bytes)?;
    doc.detect(&root)
}

/// Parses the content of one file in a known format (`path` names it in errors and gives an
/// OpenPose file its frame number).
pub fn read_bytes(path: impl AsRef<Path>, bytes: &[u8], format: Format, image_size: Option<(u32, u32)>) -> Result<KeypointSequence> {
    let doc = Doc::new(path.as_ref());
    let root = doc.parse(bytes)?;
    read_value(&doc, &root, format, image_size)
}

fn read_value(doc: &Doc, root: &Value, format: Format, image_size: Option<(u32, u32)>) -> Result<KeypointSequence> {
    let origin = doc.file.clone();
    match format {
        Format::OpenPose => {
            let people = parse_openpose(doc, root)?;
            let frame = frame_number(Path::new(&doc.file)).unwrap_or(0);
            KeypointSequence::from_frames(vec![KeypointFrame { frame, people }], image_size, None, format, &origin)
        }
        Format::MmPose => {
            let frames = match parse_mmpose(doc, root)? {
                MmPose::Image(people) => vec![KeypointFrame { frame: 0, people }],
                MmPose::Video(frames) => frames,
            };
            KeypointSequence::from_frames(frames, image_size, None, format, &origin)
        }
        Format::Coco => {
            let (frames, size) = parse_coco(doc, root)?;
            let size = agree_size(doc, "images[].width/height", size, image_size)?;
            KeypointSequence::from_frames(frames, size, None, format, &origin)
        }
        Format::MediaPipe => {
            let (frames, size, fps) = parse_mediapipe(doc, root, image_size)?;
            KeypointSequence::from_frames(frames, Some(size), fps, format, &origin)
        }
    }
}

fn agree_size(doc: &Doc, field: &str, file: Option<(u32, u32)>, arg: Option<(u32, u32)>) -> Result<Option<(u32, u32)>> {
    match (file, arg) {
        (Some(f), Some(a)) if f != a => Err(doc.err(
            field,
            format!("the image size given ({} x {}) to agree with the file's ({} x {})", a.0, a.1, f.0, f.1),
        )),
        (Some(f), _) => Ok(Some(f)),
        (None, a) => Ok(a),
    }
}

/// The files `path` names, and whether it names a set of per-frame files (a folder or pattern;
/// then sorted by frame number).
fn list_inputs(path: &Path) -> Result<(Vec<PathBuf>, bool)> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (dir, pattern) = if path.is_dir() {
        (path.to_path_buf(), "*.json".to_string())
    } else if name.contains('*') || name.contains('?') {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (dir, name)
    } else {
        return Ok((vec![path.to_path_buf()], false));
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let p = entry.path();
        let n = entry.file_name().to_string_lossy().into_owned();
        if p.is_file() && wildcard(&pattern.to_ascii_lowercase(), &n.to_ascii_lowercase()) {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(Error::Input(format!("{}: no files match `{pattern}`", dir.display())));
    }
    let mut numbered = Vec::with_capacity(files.len());
    for f in files {
        let n = frame_number(&f).ok_or_else(|| {
            Error::Input(format!("{}: a per-frame file needs a frame number in its name", f.display()))
        })?;
        numbered.push((n, f));
    }
    numbered.sort();
    for w in numbered.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(Error::Input(format!(
                "{} and {}: two files for frame {}",
                w[0].1.display(),
                w[1].1.display(),
                w[0].0
            )));
        }
    }
    Ok((numbered.into_iter().map(|(_, f)| f).collect(), true))
}

/// The last run of decimal digits in a file's stem: `video_000000000012_keypoints.json` -> 12.
pub fn frame_number(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_string_lossy();
    let bytes = stem.as_bytes();
    let end = bytes.iter().rposition(|b| b.is_ascii_digit())? + 1;
    let start = bytes[..end].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    stem[start..end].parse().ok()
}

/// `*` (any run) and `?` (one character) matching of a whole name.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

// ---------------------------------------------------------------------------------------------
// JSON walking with precise errors.

struct Doc {
    file: String,
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string \"{s}\""),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("a list of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn key(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl Doc {
    fn new(path: &Path) -> Self {
        Self { file: path.display().to_string() }
    }

    /// `file: field: expected ...`.
    fn err(&self, field: &str, expected: impl fmt::Display) -> Error {
        let field = if field.is_empty() { "(top level)" } else { field };
        Error::Input(format!("{}: {field}: expected {expected}", self.file))
    }

    fn parse(&self, bytes: &[u8]) -> Result<Value> {
        serde_json::from_slice(bytes).map_err(|e| Error::Input(format!("{}: not valid JSON: {e}", self.file)))
    }

    fn detect(&self, root: &Value) -> Result<Format> {
        match root {
            Value::Object(o) => {
                if o.get("format").and_then(Value::as_str) == Some("mediapipe_pose") {
                    Ok(Format::MediaPipe)
                } else if o.contains_key("people") {
                    Ok(Format::OpenPose)
                } else if o.contains_key("annotations") {
                    Ok(Format::Coco)
                } else if o.contains_key("instance_info") {
                    Ok(Format::MmPose)
                } else {
                    Err(self.err(
                        "",
                        "a keypoint file: an object with `people` (OpenPose), `annotations` (COCO), \
                         `instance_info` (MMPose) or `\"format\": \"mediapipe_pose\"`, or a list (MMPose)",
                    ))
                }
            }
            Value::Array(a) if a.first().is_some_and(|e| e.get("image_id").is_some()) => Ok(Format::Coco),
            Value::Array(_) => Ok(Format::MmPose),
            other => Err(self.err("", format!("a keypoint file (a JSON object or list), found {}", kind(other)))),
        }
    }

    fn obj<'v>(&self, v: &'v Value, path: &str) -> Result<&'v serde_json::Map<String, Value>> {
        v.as_object().ok_or_else(|| self.err(path, format!("an object, found {}", kind(v))))
    }

    /// A required field of an object.
    fn field<'v>(&self, v: &'v Value, path: &str, k: &str, what: &str) -> Result<&'v Value> {
        let o = self.obj(v, path)?;
        o.get(k).ok_or_else(|| self.err(&key(path, k), format!("{what} (the field is missing)")))
    }

    fn list<'v>(&self, v: &'v Value, path: &str, what: &str) -> Result<&'v [Value]> {
        v.as_array().map(|a| a.as_slice()).ok_or_else(|| self.err(path, format!("{what}, found {}", kind(v))))
    }

    /// A finite number that fits f32.
    fn num(&self, v: &Value, path: &str) -> Result<f32> {
        let x = v.as_f64().ok_or_else(|| self.err(path, format!("a number, found {}", kind(v))))?;
        let y = x as f32;
        if !y.is_finite() {
            return Err(self.err(path, format!("a finite 32-bit number, found {x}")));
        }
        Ok(y)
    }

    fn int(&self, v: &Value, path: &str) -> Result<i64> {
        if let Some(i) = v.as_i64() {
            return Ok(i);
        }
        // Integers written as 12.0 (some writers).
        match v.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
            _ => Err(self.err(path, format!("an integer, found {}", kind(v)))),
        }
    }

    fn frame_no(&self, v: &Value, path: &str) -> Result<usize> {
        let i = self.int(v, path)?;
        usize::try_from(i).map_err(|_| self.err(path, format!("a frame number >= 0, found {i}")))
    }

    /// An optional track id: absent, null, an integer, or (OpenPose) a list of one integer;
    /// -1 means none.
    fn track_id(&self, o: &serde_json::Map<String, Value>, path: &str, k: &str) -> Result<Option<i64>> {
        let p = key(path, k);
        let id = match o.get(k) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) if a.len() == 1 => self.int(&a[0], &idx(&p, 0))?,
            Some(Value::Array(a)) if a.is_empty() => return Ok(None),
            Some(v @ Value::Number(_)) => self.int(v, &p)?,
            Some(v) => return Err(self.err(&p, format!("an integer id (or [id]), found {}", kind(v)))),
        };
        Ok(if id == -1 { None } else { Some(id) })
    }

    fn size(&self, v: &Value, path: &str) -> Result<(u32, u32)> {
        let a = self.list(v, path, "[width, height] in pixels")?;
        if a.len() != 2 {
            return Err(self.err(path, format!("[width, height] in pixels, found a list of {}", a.len())));
        }
        let mut wh = [0u32; 2];
        for (i, x) in a.iter().enumerate() {
            let n = self.int(x, &idx(path, i))?;
            wh[i] = u32::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| self.err(&idx(path, i), format!("a positive image size, found {n}")))?;
        }
        Ok((wh[0], wh[1]))
    }
}

/// Sets BODY_25 slot `slot` from a source point; a confidence <= 0 leaves the slot missing.
fn set(kp: &mut Body25, slot: usize, x: f32, y: f32, conf: f32) {
    kp[slot] = if conf > 0.0 { [x, y, conf] } else { [0.0; 3] };
}

// ---------------------------------------------------------------------------------------------
// OpenPose

fn parse_openpose(doc: &Doc, root: &Value) -> Result<Vec<Person>> {
    let people = doc.list(doc.field(root, "", "people", "a list of people")?, "people", "a list of people")?;
    let mut out = Vec::with_capacity(people.len());
    for (i, p) in people.iter().enumerate() {
        let pp = idx("people", i);
        let o = doc.obj(p, &pp)?;
        let kf = key(&pp, "pose_keypoints_2d");
        let v = doc.field(p, &pp, "pose_keypoints_2d", "75 (BODY_25) or 54 (COCO_18) numbers")?;
        let a = doc.list(v, &kf, "a list of 75 (BODY_25) or 54 (COCO_18) numbers")?;
        let map: &[usize] = match a.len() {
            75 => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
            54 => &COCO18_TO_BODY25,
            n => return Err(doc.err(&kf, format!("75 (BODY_25) or 54 (COCO_18) numbers, found {n}"))),
        };
        let mut person = Person::empty(doc.track_id(o, &pp, "person_id")?);
        for (j, &slot) in map.iter().enumerate() {
            let x = doc.num(&a[3 * j], &idx(&kf, 3 * j))?;
            let y = doc.num(&a[3 * j + 1], &idx(&kf, 3 * j + 1))?;
            let c = doc.num(&a[3 * j + 2], &idx(&kf, 3 * j + 2))?;
            set(&mut person.keypoints, slot, x, y, c);
        }
        out.push(person);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// COCO annotations

fn parse_coco(doc: &Doc, root: &Value) -> Result<(Vec<KeypointFrame>, Option<(u32, u32)>)> {
    // A top-level list is a COCO results file: `[{image_id, category_id, keypoints, score}]`
    // with a score instead of a visibility per keypoint.
    let results = root.is_array();
    let (root_o, anns, base) = if results {
        (None, doc.list(root, "", "a list of results")?, "")
    } else {
        let anns = doc.list(doc.field(root, "", "annotations", "a list of annotations")?, "annotations", "a list of annotations")?;
        (Some(doc.obj(root, "")?), anns, "annotations")
    };

    // The person category: the one whose `keypoints` names 17 points, else the one named "person".
    let mut person_cat: Option<i64> = None;
    if let Some(cats) = root_o.and_then(|o| o.get("categories")) {
        let cats = doc.list(cats, "categories", "a list of categories")?;
        let mut by_name = None;
        for (i, c) in cats.iter().enumerate() {
            let cp = idx("categories", i);
            let co = doc.obj(c, &cp)?;
            let Some(id) = co.get("id") else { continue };
            let id = doc.int(id, &key(&cp, "id"))?;
            if co.get("keypoints").and_then(Value::as_array).is_some_and(|k| k.len() == 17) {
                person_cat = Some(id);
                break;
            }
            if co.get("name").and_then(Value::as_str) == Some("person") {
                by_name = Some(id);
            }
        }
        person_cat = person_cat.or(by_name);
    }

    // Images: ids and sizes.
    let mut image_ids: Vec<i64> = Vec::new();
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    let mut all_sized = true;
    if let Some(images) = root_o.and_then(|o| o.get("images")) {
        let images = doc.list(images, "images", "a list of images")?;
        for (i, im) in images.iter().enumerate() {
            let ip = idx("images", i);
            image_ids.push(doc.int(doc.field(im, &ip, "id", "an image id")?, &key(&ip, "id"))?);
            let o = doc.obj(im, &ip)?;
            match (o.get("width"), o.get("height")) {
                (Some(w), Some(h)) => {
                    let size = doc.size(&Value::Array(vec![w.clone(), h.clone()]), &key(&ip, "width/height"))?;
                    sizes.push(size);
                }
                _ => all_sized = false,
            }
        }
    }

    let mut people: Vec<(i64, Person)> = Vec::new();
    for (i, a) in anns.iter().enumerate() {
        let ap = idx(base, i);
        let o = doc.obj(a, &ap)?;
        if let (Some(cat), Some(c)) = (person_cat, o.get("category_id")) {
            if doc.int(c, &key(&ap, "category_id"))? != cat {
                continue;
            }
        }
        if let Some(c) = o.get("iscrowd") {
            if doc.int(c, &key(&ap, "iscrowd"))? != 0 {
                continue;
            }
        }
        let image_id = doc.int(doc.field(a, &ap, "image_id", "the image id")?, &key(&ap, "image_id"))?;
        let track = match o.get("track_id") {
            Some(_) => doc.track_id(o, &ap, "track_id")?,
            None if results => None,
            None => doc.track_id(o, &ap, "id")?,
        };
        let mut person = Person::empty(track);
        let kf = key(&ap, "keypoints");
        let k = doc.list(doc.field(a, &ap, "keypoints", "51 numbers (17 x [x, y, v])")?, &kf, "a list of 51 numbers (17 x [x, y, v])")?;
        if k.len() != 51 {
            return Err(doc.err(&kf, format!("51 numbers (17 x [x, y, v]), found {}", k.len())));
        }
        coco_points(doc, k, &kf, &COCO17_TO_BODY25, results, &mut person.keypoints)?;
        // COCO-WholeBody feet (`foot_kpts`, 6 x [x, y, v]) unless marked invalid.
        let foot_valid = o.get("foot_valid").and_then(Value::as_bool).unwrap_or(true);
        if let (Some(f), true) = (o.get("foot_kpts"), foot_valid) {
            let ff = key(&ap, "foot_kpts");
            let f = doc.list(f, &ff, "a list of 18 numbers (6 x [x, y, v])")?;
            if f.len() != 18 {
                return Err(doc.err(&ff, format!("18 numbers (6 x [x, y, v]), found {}", f.len())));
            }
            coco_points(doc, f, &ff, &WHOLEBODY_FOOT_TO_BODY25, results, &mut person.keypoints)?;
        }
        people.push((image_id, person));
    }

    image_ids.extend(people.iter().map(|(id, _)| *id));
    image_ids.sort_unstable();
    image_ids.dedup();
    let mut frames: Vec<KeypointFrame> =
        (0..image_ids.len()).map(|frame| KeypointFrame { frame, people: Vec::new() }).collect();
    for (image_id, p) in people {
        let f = image_ids.binary_search(&image_id).expect("every annotation's image id is listed");
        frames[f].people.push(p);
    }
    let size = match sizes.first() {
        Some(&s) if all_sized && sizes.iter().all(|&t| t == s) => Some(s),
        _ => None,
    };
    Ok((frames, size))
}

/// `[x, y, v]` triples with COCO visibility (0 unlabeled, 1 occluded, 2 visible) into `slots`;
/// with `scores`, `[x, y, score]` (a results file; the score is the confidence).
fn coco_points(doc: &Doc, k: &[Value], path: &str, slots: &[usize], scores: bool, kp: &mut Body25) -> Result<()> {
    for (j, &slot) in slots.iter().enumerate() {
        let x = doc.num(&k[3 * j], &idx(path, 3 * j))?;
        let y = doc.num(&k[3 * j + 1], &idx(path, 3 * j + 1))?;
        let vp = idx(path, 3 * j + 2);
        let v = doc.num(&k[3 * j + 2], &vp)?;
        let conf = match v {
            v if scores => v,
            v if v == 0.0 => 0.0,
            v if v == 1.0 => COCO_OCCLUDED_CONFIDENCE,
            v if v == 2.0 => 1.0,
            v => return Err(doc.err(&vp, format!("a visibility of 0, 1 or 2, found {v}"))),
        };
        set(kp, slot, x, y, conf);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MMPose

enum MmPose {
    /// One image's instances (the demo's image output, or an inferencer per-image file).
    Image(Vec<Person>),
    /// `{frame_id, instances}` per frame.
    Video(Vec<KeypointFrame>),
}

fn parse_mmpose(doc: &Doc, root: &Value) -> Result<MmPose> {
    let (list, base) = match root {
        Value::Array(a) => (a.as_slice(), String::new()),
        _ => {
            let v = doc.field(root, "", "instance_info", "a list of frames or instances")?;
            (doc.list(v, "instance_info", "a list of frames or instances")?, "instance_info".to_string())
        }
    };
    let video = list.iter().any(|e| e.get("instances").is_some() || e.get("frame_id").is_some());
    if !video {
        let mut people = Vec::with_capacity(list.len());
        for (i, inst) in list.iter().enumerate() {
            people.push(mmpose_instance(doc, inst, &idx(&base, i))?);
        }
        return Ok(MmPose::Image(people));
    }
    let mut frames = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let ep = idx(&base, i);
        let frame = doc.frame_no(doc.field(e, &ep, "frame_id", "the frame number")?, &key(&ep, "frame_id"))?;
        let ip = key(&ep, "instances");
        let insts = doc.list(doc.field(e, &ep, "instances", "a list of instances")?, &ip, "a list of instances")?;
        let mut people = Vec::with_capacity(insts.len());
        for (j, inst) in insts.iter().enumerate() {
            people.push(mmpose_instance(doc, inst, &idx(&ip, j))?);
        }
        frames.push(KeypointFrame { frame, people });
    }
    Ok(MmPose::Video(frames))
}

fn mmpose_instance(doc: &Doc, inst: &Value, path: &str) -> Result<Person> {
    let o = doc.obj(inst, path)?;
    let kf = key(path, "keypoints");
    const WHAT: &str = "17 (COCO), 26 (Halpe) or 133 (COCO-WholeBody) [x, y] points";
    let k = doc.list(doc.field(inst, path, "keypoints", WHAT)?, &kf, &format!("a list of {WHAT}"))?;
    if k.len() != 17 && k.len() != 26 && k.len() != 133 {
        return Err(doc.err(&kf, format!("{WHAT}, found {}", k.len())));
    }
    let sf = key(path, "keypoint_scores");
    let s = doc.list(
        doc.field(inst, path, "keypoint_scores", "one score per keypoint")?,
        &sf,
        "a list of scores, one per keypoint",
    )?;
    if s.len() != k.len() {
        return Err(doc.err(&sf, format!("{} scores (one per keypoint), found {}", k.len(), s.len())));
    }
    let mut person = Person::empty(doc.track_id(o, path, "track_id")?);
    let put = |j: usize, slot: usize, person: &mut Person| -> Result<()> {
        let pp = idx(&kf, j);
        let xy = doc.list(&k[j], &pp, "[x, y]")?;
        if xy.len() != 2 {
            return Err(doc.err(&pp, format!("[x, y], found a list of {}", xy.len())));
        }
        let x = doc.num(&xy[0], &idx(&pp, 0))?;
        let y = doc.num(&xy[1], &idx(&pp, 1))?;
        let c = doc.num(&s[j], &idx(&sf, j))?;
        set(&mut person.keypoints, slot, x, y, c);
        Ok(())
    };
    for (j, &slot) in COCO17_TO_BODY25.iter().enumerate() {
        put(j, slot, &mut person)?;
    }
    if k.len() == 133 {
        // COCO-WholeBody: body 0-16, feet 17-22.
        for (j, &slot) in WHOLEBODY_FOOT_TO_BODY25.iter().enumerate() {
            put(17 + j, slot, &mut person)?;
        }
    }
    if k.len() == 26 {
        // Halpe-26 (RTMPose body8-halpe26): body 0-16, head/neck/hip 17-19 (unused), feet 20-25.
        for &(j, slot) in &HALPE26_FEET_TO_BODY25 {
            put(j, slot, &mut person)?;
        }
    }
    Ok(person)
}

// ---------------------------------------------------------------------------------------------
// MediaPipe (rigfit schema)

fn parse_mediapipe(
    doc: &Doc,
    root: &Value,
    image_size: Option<(u32, u32)>,
) -> Result<(Vec<KeypointFrame>, (u32, u32), Option<f32>)> {
    let o = doc.obj(root, "")?;
    let fmt = doc.field(root, "", "format", "\"mediapipe_pose\"")?;
    if fmt.as_str() != Some("mediapipe_pose") {
        return Err(doc.err("format", format!("\"mediapipe_pose\", found {}", kind(fmt))));
    }
    let file_size = match o.get("image_size") {
        Some(v) => Some(doc.size(v, "image_size")?),
        None => None,
    };
    let (w, h) = agree_size(doc, "image_size", file_size, image_size)?.ok_or_else(|| {
        doc.err(
            "image_size",
            "[width, height] in pixels: MediaPipe landmarks are normalised to the image, so the size \
             must be in the file or given by the caller (the field is missing)",
        )
    })?;
    let fps = match o.get("fps") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let f = doc.num(v, "fps")?;
            if f <= 0.0 {
                return Err(doc.err("fps", format!("a positive number of frames per second, found {f}")));
            }
            Some(f)
        }
    };
    let frames_v = doc.list(doc.field(root, "", "frames", "a list of frames")?, "frames", "a list of frames")?;
    let mut frames = Vec::with_capacity(frames_v.len());
    for (i, f) in frames_v.iter().enumerate() {
        let fp = idx("frames", i);
        let frame = doc.frame_no(doc.field(f, &fp, "frame", "the frame number")?, &key(&fp, "frame"))?;
        let pp = key(&fp, "people");
        let people_v = doc.list(doc.field(f, &fp, "people", "a list of people")?, &pp, "a list of people")?;
        let mut people = Vec::with_capacity(people_v.len());
        for (j, p) in people_v.iter().enumerate() {
            let pj = idx(&pp, j);
            let po = doc.obj(p, &pj)?;
            let lf = key(&pj, "landmarks");
            let l = doc.list(doc.field(p, &pj, "landmarks", "33 landmarks")?, &lf, "a list of 33 landmarks")?;
            if l.len() != 33 {
                return Err(doc.err(&lf, format!("33 landmarks (MediaPipe Pose), found {}", l.len())));
            }
            let mut pts = [[0f32; 3]; 33];
            for (m, lm) in l.iter().enumerate() {
                pts[m] = mediapipe_landmark(doc, lm, &idx(&lf, m), w, h)?;
            }
            let mut person = Person::empty(doc.track_id(po, &pj, "track_id")?);
            for &(m, slot) in &MEDIAPIPE_TO_BODY25 {
                let [x, y, c] = pts[m];
                set(&mut person.keypoints, slot, x, y, c);
            }
            // Neck = mid-shoulders, MidHip = mid-hips; confidence = min of the two.
            for (a, b, slot) in [(11, 12, 1), (23, 24, 8)] {
                let (pa, pb) = (pts[a], pts[b]);
                set(&mut person.keypoints, slot, 0.5 * (pa[0] + pb[0]), 0.5 * (pa[1] + pb[1]), pa[2].min(pb[2]));
            }
            people.push(person);
        }
        frames.push(KeypointFrame { frame, people });
    }
    Ok((frames, (w, h), fps))
}

/// One landmark -> `[x px, y px, visibility]`.
fn mediapipe_landmark(doc: &Doc, lm: &Value, path: &str, w: u32, h: u32) -> Result<[f32; 3]> {
    const WHAT: &str = "[x, y, z, visibility] (or with presence), or {\"x\", \"y\", \"visibility\"}";
    let (x, y, v) = match lm {
        Value::Array(a) => {
            if a.len() != 4 && a.len() != 5 {
                return Err(doc.err(path, format!("{WHAT}, found a list of {}", a.len())));
            }
            (doc.num(&a[0], &idx(path, 0))?, doc.num(&a[1], &idx(path, 1))?, doc.num(&a[3], &idx(path, 3))?)
        }
        Value::Object(_) => {
            let g = |k: &str| -> Result<f32> { doc.num(doc.field(lm, path, k, "a number")?, &key(path, k)) };
            (g("x")?, g("y")?, g("visibility")?)
        }
        other => return Err(doc.err(path, format!("{WHAT}, found {}", kind(other)))),
    };
    Ok([x * w as f32, y * h as f32, v.clamp(0.0, 1.0)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_whole_names() {
        assert!(wildcard("clip_*_keypoints.json", "clip_12_keypoints.json"));
        assert!(wildcard("*.json", "a.b.json"));
        assert!(wildcard("f?.json", "f7.json"));
        assert!(wildcard("*_*_k*", "video_000000000012_keypoints.json"));
        assert!(!wildcard("f?.json", "f12.json"));
        assert!(!wildcard("*.json", "notes.txt"));
        assert!(!wildcard("clip_*_keypoints.json", "clip_12_keypoints.json.bak"));
        assert!(!wildcard("clip_*", "video_clip_1.json"));
    }

    #[test]
    fn from_frames_fills_gaps_and_rejects_duplicates() {
        let f = |frame| KeypointFrame { frame, people: vec![Person::empty(None)] };
        let seq = KeypointSequence::from_frames(vec![f(7), f(4)], None, None, Format::OpenPose, "x").unwrap();
        assert_eq!(seq.frames.iter().map(|k| (k.frame, k.people.len())).collect::<Vec<_>>(), vec![(4, 1), (5, 0), (6, 0), (7, 1)]);
        assert!(KeypointSequence::from_frames(vec![f(3), f(3)], None, None, Format::OpenPose, "x").is_err());
        assert!(KeypointSequence::from_frames(vec![f(0), f(MAX_FRAME_SPAN)], None, None, Format::OpenPose, "x").is_err());
        // An all-missing person is never chosen by track().
        assert_eq!(seq.track(None).unwrap(), vec![None; 4]);
    }
}
