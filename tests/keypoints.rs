//! Keypoint readers: every format lands its known coordinates in the right BODY_25 slots.
//!
//! The fixtures (tests/fixtures/keypoints) place source joint `j` of person `p` in frame `f` at
//! `x = 10 j + 1 + 1000 p`, `y = 10 j + 2 + 100 f` (MediaPipe: landmark `m` at
//! `((m + 1) / 100, (m + 1) / 200)` of a 1000 x 500 image). The expected BODY_25 slot of each
//! source joint is derived here from the joint NAMES (`left_wrist` -> `LWrist`), independently of
//! the reader's index tables.

use std::path::{Path, PathBuf};

use rigfit::body::BODY25_NAMES;
use rigfit::io::keypoints::{self, Body25, Format};
use rigfit::Error;

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keypoints").join(name)
}

const COCO17: [&str; 17] = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
];
const OPENPOSE_COCO18: [&str; 18] = [
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee", "RAnkle",
    "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
];
const WHOLEBODY_FEET: [&str; 6] =
    ["left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel"];
/// mmpose configs/_base_/datasets/halpe26.py, keypoints 17-25 (0-16 are COCO-17).
const HALPE_EXTRA: [&str; 9] = [
    "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel",
    "right_heel",
];
const MEDIAPIPE33: [&str; 33] = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
];

/// `left_big_toe` -> `LBigToe`, `nose` -> `Nose`; MediaPipe's `foot_index` is the big toe.
fn body25_slot(name: &str) -> Option<usize> {
    let name = name.replace("foot_index", "big_toe");
    let (side, rest) = if let Some(r) = name.strip_prefix("left_") {
        ("L", r)
    } else if let Some(r) = name.strip_prefix("right_") {
        ("R", r)
    } else {
        ("", name.as_str())
    };
    let camel: String = rest
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let full = format!("{side}{camel}");
    BODY25_NAMES.iter().position(|&n| n == full)
}

fn slot(name: &str) -> usize {
    body25_slot(name).unwrap_or_else(|| panic!("{name} has no BODY_25 slot"))
}

fn xy(j: usize, p: usize, f: usize) -> [f32; 2] {
    [(10 * j + 1 + 1000 * p) as f32, (10 * j + 2 + 100 * f) as f32]
}

fn assert_point(kp: &Body25, slot: usize, expect: [f32; 2], conf: f32, what: &str) {
    let k = kp[slot];
    assert!(
        (k[0] - expect[0]).abs() < 1e-3 && (k[1] - expect[1]).abs() < 1e-3 && (k[2] - conf).abs() < 1e-6,
        "{what}: slot {slot} ({}) is {k:?}, expected [{}, {}, {conf}]",
        BODY25_NAMES[slot],
        expect[0],
        expect[1]
    );
}

fn assert_missing(kp: &Body25, slot: usize, what: &str) {
    assert_eq!(kp[slot], [0.0; 3], "{what}: slot {slot} ({}) should be missing", BODY25_NAMES[slot]);
}

fn input_error(r: Result<keypoints::KeypointSequence, Error>) -> String {
    match r {
        Err(Error::Input(m)) => m,
        Err(e) => panic!("expected Error::Input, got {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn name_rule_covers_the_fixed_slots() {
    // The name rule the tests rely on: COCO left_wrist is BODY_25 7 LWrist, as the task states.
    assert_eq!(slot("left_wrist"), 7);
    assert_eq!(slot("right_ankle"), 11);
    assert_eq!(slot("left_foot_index"), 19);
    assert_eq!(slot("right_heel"), 24);
}

#[test]
fn openpose_folder_sorted_by_frame_number_with_gaps_filled() {
    let seq = keypoints::read(fx("openpose"), None, Some((1920, 1080))).unwrap();
    assert_eq!(seq.source, Format::OpenPose);
    assert_eq!(seq.image_size, Some((1920, 1080)));
    // clip_9, clip_10, clip_12 (numeric, not lexical, order) and an empty frame 11.
    let numbers: Vec<usize> = seq.frames.iter().map(|f| f.frame).collect();
    assert_eq!(numbers, vec![9, 10, 11, 12]);
    assert_eq!(seq.frames.iter().map(|f| f.people.len()).collect::<Vec<_>>(), vec![2, 2, 0, 1]);
    // BODY_25 is the identity layout; person_id [p] is the track id; 0,0,0 is missing.
    let p = &seq.frames[1].people[1];
    assert_eq!(p.track_id, Some(0));
    for (j, name) in BODY25_NAMES.iter().enumerate() {
        if *name == "LSmallToe" || *name == "RSmallToe" {
            assert_missing(&p.keypoints, j, name);
        } else {
            assert_point(&p.keypoints, j, xy(j, 0, 10), 0.6, name);
        }
    }
    assert_eq!(p.num_present(), 23);
    assert!((p.mean_confidence() - 0.6 * 23.0 / 25.0).abs() < 1e-6);
    assert_eq!(p.bbox(), Some([1.0, 1002.0, 241.0, 1242.0]));

    // A glob over the same files reads the same sequence.
    let globbed = keypoints::read(fx("openpose/clip_*_keypoints.json"), None, Some((1920, 1080))).unwrap();
    assert_eq!(globbed, seq);
}

#[test]
fn track_selection_by_id_and_by_confidence() {
    let seq = keypoints::read(fx("openpose"), None, None).unwrap();
    assert_eq!(seq.track_ids(), vec![0, 1]);
    // Frame 9: id 0 conf 0.9, id 1 conf 0.5; frame 10: id 1 0.8 (listed first), id 0 0.6;
    // frame 11: nobody; frame 12: id 1 only.
    let by0 = seq.track(Some(0)).unwrap();
    assert_eq!(by0.len(), 4);
    assert_point(by0[0].as_ref().unwrap(), 7, xy(7, 0, 9), 0.9, "id 0 frame 9");
    assert_point(by0[1].as_ref().unwrap(), 7, xy(7, 0, 10), 0.6, "id 0 frame 10");
    assert!(by0[2].is_none() && by0[3].is_none());

    let by1 = seq.track(Some(1)).unwrap();
    assert_point(by1[0].as_ref().unwrap(), 0, xy(0, 1, 9), 0.5, "id 1 frame 9");
    assert!(by1[2].is_none());
    assert_point(by1[3].as_ref().unwrap(), 0, xy(0, 1, 12), 0.7, "id 1 frame 12");

    // No id: the most confident person of each frame.
    let auto = seq.track(None).unwrap();
    assert_point(auto[0].as_ref().unwrap(), 3, xy(3, 0, 9), 0.9, "auto frame 9");
    assert_point(auto[1].as_ref().unwrap(), 3, xy(3, 1, 10), 0.8, "auto frame 10");
    assert!(auto[2].is_none());
    assert_point(auto[3].as_ref().unwrap(), 3, xy(3, 1, 12), 0.7, "auto frame 12");

    let msg = match seq.track(Some(7)) {
        Err(Error::Input(m)) => m,
        other => panic!("expected an error for an unknown id, got {other:?}"),
    };
    assert!(msg.contains("track id 7") && msg.contains("[0, 1]"), "{msg}");
}

#[test]
fn openpose_coco18_file() {
    let seq = keypoints::read(fx("coco18_000000000005_keypoints.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::OpenPose);
    assert_eq!(seq.frames.len(), 1);
    assert_eq!(seq.frames[0].frame, 5, "frame number from the file name");
    let p = &seq.frames[0].people[0];
    assert_eq!(p.track_id, None, "no person_id");
    for (j, name) in OPENPOSE_COCO18.iter().enumerate() {
        let s = BODY25_NAMES.iter().position(|n| n == name).unwrap();
        if *name == "LAnkle" {
            assert_missing(&p.keypoints, s, name);
        } else {
            assert_point(&p.keypoints, s, xy(j, 0, 5), 0.75, name);
        }
    }
    for s in [8, 19, 20, 21, 22, 23, 24] {
        assert_missing(&p.keypoints, s, "no COCO_18 source");
    }
}

#[test]
fn coco_annotations_group_by_image_and_map_visibility() {
    let seq = keypoints::read(fx("coco.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::Coco);
    assert_eq!(seq.image_size, Some((640, 480)));
    // Images 3, 5, 7 -> frames 0, 1, 2; image 5 has no annotation; the crowd annotation is skipped.
    assert_eq!(seq.frames.iter().map(|f| f.frame).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(seq.frames.iter().map(|f| f.people.len()).collect::<Vec<_>>(), vec![2, 0, 1]);

    let p = &seq.frames[0].people[0];
    assert_eq!(p.track_id, Some(0));
    for (j, name) in COCO17.iter().enumerate() {
        let s = slot(name);
        match *name {
            "right_ankle" => assert_missing(&p.keypoints, s, name), // v = 0
            "right_wrist" => assert_point(&p.keypoints, s, xy(j, 0, 0), 0.5, name), // v = 1
            _ => assert_point(&p.keypoints, s, xy(j, 0, 0), 1.0, name), // v = 2
        }
    }
    assert_point(&p.keypoints, 7, xy(9, 0, 0), 1.0, "COCO left_wrist (9) in BODY_25 7 LWrist");
    // Neck, MidHip and the feet stay missing (ScoreHMR convention).
    for s in [1, 8, 19, 20, 21, 22, 23, 24] {
        assert_missing(&p.keypoints, s, "not in COCO-17");
    }

    // COCO-WholeBody foot_kpts fill the six foot slots.
    let q = &seq.frames[2].people[0];
    for (j, name) in WHOLEBODY_FEET.iter().enumerate() {
        assert_point(&q.keypoints, slot(name), xy(17 + j, 0, 2), 1.0, name);
    }

    let t1 = seq.track(Some(1)).unwrap();
    assert!(t1[0].is_some() && t1[1].is_none() && t1[2].is_none());
    assert_point(t1[0].as_ref().unwrap(), 5, xy(5, 1, 0), 1.0, "track 1 left_shoulder");

    // A caller's image size must agree with the file's.
    let msg = input_error(keypoints::read(fx("coco.json"), None, Some((100, 100))));
    assert!(msg.contains("coco.json") && msg.contains("640 x 480"), "{msg}");
}

#[test]
fn coco_results_list_uses_scores() {
    let seq = keypoints::read(fx("coco_results.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::Coco);
    assert_eq!(seq.image_size, None);
    // Image ids 40, 42 -> frames 0, 1.
    assert_eq!(seq.frames.iter().map(|f| f.people.len()).collect::<Vec<_>>(), vec![1, 2]);
    let p = &seq.frames[0].people[0];
    assert_eq!(p.track_id, None);
    for (j, name) in COCO17.iter().enumerate() {
        if j == 0 {
            assert_missing(&p.keypoints, slot(name), "score 0");
        } else {
            assert_point(&p.keypoints, slot(name), xy(j, 0, 0), 0.8, name);
        }
    }
    let auto = seq.track(None).unwrap();
    assert_point(auto[1].as_ref().unwrap(), slot("left_wrist"), xy(9, 1, 1), 0.95, "the higher-scoring result");
}

#[test]
fn mmpose_demo_video_predictions() {
    let seq = keypoints::read(fx("mmpose_demo_video.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::MmPose);
    assert_eq!(seq.frames.iter().map(|f| f.frame).collect::<Vec<_>>(), vec![1, 2, 3]);
    let p = &seq.frames[0].people[0];
    for (j, name) in COCO17.iter().enumerate() {
        if j == 4 {
            assert_missing(&p.keypoints, slot(name), "score 0"); // right_ear
        } else {
            assert_point(&p.keypoints, slot(name), xy(j, 0, 1), 0.9, name);
        }
    }
    for s in [1, 8, 19, 20, 21, 22, 23, 24] {
        assert_missing(&p.keypoints, s, "not in COCO-17");
    }
    let auto = seq.track(None).unwrap();
    assert!(auto[1].is_none(), "frame 2 has no one");
    assert_point(auto[2].as_ref().unwrap(), slot("right_hip"), xy(12, 1, 3), 0.8, "the more confident of frame 3");
}

#[test]
fn mmpose_wholebody_and_image_lists() {
    let seq = keypoints::read(fx("mmpose_wholebody.json"), None, None).unwrap();
    assert_eq!(seq.frames.len(), 1);
    assert_eq!(seq.frames[0].frame, 0);
    let p = &seq.frames[0].people[0];
    assert_point(&p.keypoints, slot("left_wrist"), xy(9, 0, 0), 0.85, "left_wrist");
    for (j, name) in WHOLEBODY_FEET.iter().enumerate() {
        assert_point(&p.keypoints, slot(name), xy(17 + j, 0, 0), 0.85, name);
    }

    let img = keypoints::read(fx("mmpose_image.json"), None, None).unwrap();
    assert_eq!(img.frames.len(), 1);
    assert_eq!(img.frames[0].people.len(), 2);
    assert_eq!(img.frames[0].people[0].track_id, None);
    let best = img.track(None).unwrap()[0].unwrap();
    assert_point(&best, slot("left_knee"), xy(13, 1, 0), 0.9, "the more confident instance");
}

#[test]
fn mmpose_halpe26_feet() {
    let seq = keypoints::read(fx("mmpose_halpe26.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::MmPose);
    assert_eq!(seq.frames.len(), 1);
    let p = &seq.frames[0].people[0];
    assert_eq!(p.track_id, Some(4));
    for (j, name) in COCO17.iter().chain(HALPE_EXTRA.iter()).enumerate() {
        match body25_slot(name) {
            _ if j == 4 => assert_missing(&p.keypoints, slot(name), "score 0"),
            _ if *name == "neck" => {} // checked below
            Some(s) => assert_point(&p.keypoints, s, xy(j, 0, 0), 0.7, name),
            None => {} // head, hip
        }
    }
    // Halpe's own neck and hip are not used: Neck and MidHip stay missing; head has no slot.
    assert_missing(&p.keypoints, 1, "Neck");
    assert_missing(&p.keypoints, 8, "MidHip");
    assert_eq!(p.num_present(), 16 + 6);
}

#[test]
fn mediapipe_schema_maps_and_derives_neck_and_midhip() {
    let seq = keypoints::read(fx("mediapipe.json"), None, None).unwrap();
    assert_eq!(seq.source, Format::MediaPipe);
    assert_eq!(seq.image_size, Some((1000, 500)));
    assert_eq!(seq.fps, Some(30.0));
    let px = |m: usize| [10.0 * (m + 1) as f32, 2.5 * (m + 1) as f32];
    // Frame 0 (list landmarks): right_shoulder (12) has visibility 0.3, the rest 0.9.
    let p = &seq.frames[0].people[0];
    assert_eq!(p.track_id, Some(0));
    let mut mapped = 0;
    for (m, name) in MEDIAPIPE33.iter().enumerate() {
        let Some(s) = body25_slot(name) else { continue };
        mapped += 1;
        let conf = if m == 12 { 0.3 } else { 0.9 };
        assert_point(&p.keypoints, s, px(m), conf, name);
    }
    assert_eq!(mapped, 21, "nose, eyes, ears, shoulders ... heels, foot_index");
    let mid = |a: usize, b: usize| [(px(a)[0] + px(b)[0]) / 2.0, (px(a)[1] + px(b)[1]) / 2.0];
    assert_point(&p.keypoints, 1, mid(11, 12), 0.3, "Neck = mid-shoulders, min confidence");
    assert_point(&p.keypoints, 8, mid(23, 24), 0.9, "MidHip = mid-hips");
    assert_missing(&p.keypoints, 20, "LSmallToe");
    assert_missing(&p.keypoints, 23, "RSmallToe");

    // Frame 1 (object landmarks): right_hip (24) invisible -> RHip and MidHip missing.
    let q = &seq.frames[1].people[0];
    assert_point(&q.keypoints, slot("left_eye"), px(2), 0.8, "left_eye");
    assert_missing(&q.keypoints, slot("right_hip"), "visibility 0");
    assert_missing(&q.keypoints, 8, "MidHip with one hip missing");

    // Without a size in the file the caller must give one.
    let msg = input_error(keypoints::read(fx("mediapipe_nosize.json"), None, None));
    assert!(msg.contains("mediapipe_nosize.json") && msg.contains("image_size"), "{msg}");
    let sized = keypoints::read(fx("mediapipe_nosize.json"), None, Some((1000, 500))).unwrap();
    assert_eq!(sized.frames[0], seq.frames[0]);
    assert_eq!(sized.fps, None);
}

#[test]
fn detect_picks_each_format() {
    let cases = [
        ("openpose/clip_9_keypoints.json", Format::OpenPose),
        ("coco18_000000000005_keypoints.json", Format::OpenPose),
        ("coco.json", Format::Coco),
        ("coco_results.json", Format::Coco),
        ("mmpose_demo_video.json", Format::MmPose),
        ("mmpose_wholebody.json", Format::MmPose),
        ("mmpose_image.json", Format::MmPose),
        ("mmpose_halpe26.json", Format::MmPose),
        ("mediapipe.json", Format::MediaPipe),
        ("mediapipe_nosize.json", Format::MediaPipe),
    ];
    for (name, want) in cases {
        let bytes = std::fs::read(fx(name)).unwrap();
        assert_eq!(keypoints::detect(fx(name), &bytes).unwrap(), want, "{name}");
        let size = (name == "mediapipe_nosize.json").then_some((1000, 500));
        assert_eq!(keypoints::read(fx(name), None, size).unwrap().source, want, "{name}");
    }
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
    }
    assert!("bvh".parse::<Format>().is_err());
}

#[test]
fn malformed_files_name_the_file_and_the_field() {
    let cases: [(&str, &[&str]); 8] = [
        ("bad/openpose_bad_length.json", &["people[1].pose_keypoints_2d", "75 (BODY_25) or 54 (COCO_18)", "found 52"]),
        ("bad/coco_bad_visibility.json", &["annotations[1].keypoints[29]", "visibility of 0, 1 or 2", "found 3"]),
        ("bad/coco_no_image_id.json", &["annotations[0].image_id", "missing"]),
        ("bad/mmpose_bad_scores.json", &["instance_info[0].instances[0].keypoint_scores", "17 scores", "found 16"]),
        ("bad/mmpose_bad_point.json", &["[1].keypoints[3]", "[x, y]", "a list of 1"]),
        ("bad/mediapipe_bad_landmarks.json", &["frames[0].people[0].landmarks", "33 landmarks", "found 32"]),
        ("bad/unknown.json", &["(top level)", "people", "annotations"]),
        ("bad/not_json.json", &["not valid JSON"]),
    ];
    for (name, needles) in cases {
        let msg = input_error(keypoints::read(fx(name), None, None));
        let file = Path::new(name).file_name().unwrap().to_str().unwrap();
        assert!(msg.contains(file), "{name}: message does not name the file: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{name}: message lacks `{n}`: {msg}");
        }
    }
    // A missing file is an I/O error naming it.
    match keypoints::read(fx("nope.json"), None, None) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("nope.json")),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    // A forced format that does not fit gives the field it looked for.
    let msg = input_error(keypoints::read(fx("coco.json"), Some(Format::OpenPose), None));
    assert!(msg.contains("coco.json") && msg.contains("people"), "{msg}");
}

#[test]
fn frame_number_is_the_last_number_in_the_name() {
    assert_eq!(keypoints::frame_number(Path::new("a/video_000000000012_keypoints.json")), Some(12));
    assert_eq!(keypoints::frame_number(Path::new("cam2_frame7.json")), Some(7));
    assert_eq!(keypoints::frame_number(Path::new("keypoints.json")), None);
}
