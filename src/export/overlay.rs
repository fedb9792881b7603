//! Overlay pictures: the fitted body drawn over the footage (or a blank canvas of the image's
//! size) through one of the motion's cameras, with the fitted skeleton and the input keypoints,
//! so that a person sees at a glance whether the fit is right.

use image::RgbImage;

use crate::body::{BodyModel, BodyOutput, NUM_BODY25, SMPL_PARENTS};
use crate::error::{Error, Result};
use crate::motion::Motion;
use crate::render::{Canvas, MeshStyle, View};

/// Opacity of the body over the footage.
const BODY_ALPHA: f32 = 0.6;

/// The overlay of `frame` seen by camera `camera` of `motion`: the shaded body (60% opaque),
/// the 24-joint skeleton (yellow) and the input BODY_25 keypoints `[25, 3]` (red, where
/// confident). `background` must have the camera's image size; None draws on dark grey.
pub fn overlay(model: &BodyModel, motion: &Motion, camera: usize, frame: usize, background: Option<&RgbImage>, keypoints: Option<&[f32]>) -> Result<RgbImage> {
    let cam = motion.cameras.get(camera).ok_or_else(|| Error::Input(format!("overlay: camera {camera} of {}", motion.cameras.len())))?;
    if frame >= motion.num_frames() {
        return Err(Error::Input(format!("overlay: frame {frame} of {}", motion.num_frames())));
    }
    let base = match background {
        Some(img) if img.width() == cam.width && img.height() == cam.height => img.clone(),
        Some(img) => {
            return Err(Error::Input(format!(
                "overlay: the background is {}x{}, camera '{}' is {}x{}",
                img.width(),
                img.height(),
                cam.name,
                cam.width,
                cam.height
            )))
        }
        None => RgbImage::from_pixel(cam.width, cam.height, image::Rgb([40, 40, 44])),
    };
    let mut out = BodyOutput::default();
    motion.forward(model, frame..frame + 1, true, &mut out)?;
    let (rotation, translation) = cam.world_to_cv(frame);
    let view = View { intrinsics: cam.intrinsics.into(), rotation, translation, width: cam.width, height: cam.height };
    let mut body = Canvas::from_image(base.clone());
    body.draw_mesh(&view, &out.vertices, model.faces(), &MeshStyle { color: [120, 170, 235], ..MeshStyle::default() })?;
    // Blend the body over the footage where it was drawn.
    let mut img = base;
    for (d, b) in img.pixels_mut().zip(body.image().pixels()) {
        if b != d {
            for c in 0..3 {
                d.0[c] = (d.0[c] as f32 * (1.0 - BODY_ALPHA) + b.0[c] as f32 * BODY_ALPHA).round() as u8;
            }
        }
    }
    let mut canvas = Canvas::from_image(img);
    let scale = (cam.width.max(cam.height) as f32 / 1000.0).max(0.5);
    let joints: Vec<[f32; 2]> = out.joints.chunks_exact(3).map(|p| cam.project(frame, [p[0], p[1], p[2]]).unwrap_or([f32::NAN; 2])).collect();
    canvas.draw_skeleton(&joints, &SMPL_PARENTS, 2.5 * scale, [250, 210, 60], 3.5 * scale, [250, 210, 60])?;
    if let Some(kp) = keypoints {
        if kp.len() != NUM_BODY25 * 3 {
            return Err(Error::Input(format!("overlay: {} keypoint values, expected [25, 3]", kp.len())));
        }
        let pts: Vec<[f32; 2]> = kp.chunks_exact(3).filter(|k| k[2] > 0.0).map(|k| [k[0], k[1]]).collect();
        canvas.draw_points(&pts, 4.0 * scale, [235, 60, 50]);
    }
    Ok(canvas.into_image())
}
