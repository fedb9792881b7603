//! A small software rasteriser for pictures of the body: model cards, keypoint overlays.
//!
//! - [`View`]: a pinhole camera ([`Pinhole`] intrinsics, OpenCV axes: x right, y down, z forward)
//!   with world-to-camera extrinsics `p_cam = R p + t` and an image size. [`View::body_front`]
//!   frames a Y-up body (facing +Z, SMPL's frame) from the front, optionally turned about the
//!   vertical axis.
//! - [`Canvas`]: an RGB image with a depth buffer. [`Canvas::draw_mesh`] rasterises triangles
//!   with a z-buffer and Lambert + ambient shading (smooth vertex normals, or a flat colour);
//!   [`Canvas::draw_points`], [`Canvas::draw_segments`] and [`Canvas::draw_skeleton`] draw 2D
//!   overlays on top. Start from a background colour or any background image
//!   ([`Canvas::from_image`]).
//! - [`render_body_front`]: one call for a front picture of a body mesh.
//!
//! Pixels are sampled at their centres; triangles crossing the near plane are skipped.
//! Single-threaded and deterministic.

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::geom::camera::Pinhole;

/// Nearest depth (m, camera frame) a triangle may have to be drawn.
const NEAR: f32 = 1e-3;

/// A pinhole camera with extrinsics and an image size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Intrinsics (pixels).
    pub intrinsics: Pinhole,
    /// World-to-camera rotation, row-major `[3, 3]`.
    pub rotation: [f32; 9],
    /// World-to-camera translation `[3]`: `p_cam = rotation p + translation`.
    pub translation: [f32; 3],
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
}

fn mat_vec(m: &[f32; 9], p: [f32; 3]) -> [f32; 3] {
    [
        m[0] * p[0] + m[1] * p[1] + m[2] * p[2],
        m[3] * p[0] + m[4] * p[1] + m[5] * p[2],
        m[6] * p[0] + m[7] * p[1] + m[8] * p[2],
    ]
}

fn check_points(points: &[f32]) -> Result<()> {
    if points.is_empty() || points.len() % 3 != 0 {
        return Err(Error::Input(format!("points have {} values, expected [N, 3] with N >= 1", points.len())));
    }
    Ok(())
}

impl View {
    /// A camera at the world origin looking along +Z with image y down (identity rotation), as
    /// ScoreHMR's: place bodies with `translation`.
    pub fn new(intrinsics: Pinhole, width: u32, height: u32) -> Self {
        Self { intrinsics, rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], translation: [0.0; 3], width, height }
    }

    /// Frames the points `[N, 3]` of a Y-up body facing +Z (SMPL's frame) from the front: the
    /// camera looks along -Z (the body's left side, +X, on the image's right), turned by
    /// `yaw_deg` about the vertical axis through the centre of the points' bounding box
    /// (positive yaw moves the camera towards the body's left). The focal length corresponds to
    /// a 30-degree vertical field of view; the body fills the image up to `margin` (a fraction
    /// of the image, e.g. 0.05).
    pub fn body_front(points: &[f32], width: u32, height: u32, yaw_deg: f32, margin: f32) -> Result<Self> {
        check_points(points)?;
        if width == 0 || height == 0 {
            return Err(Error::Input(format!("image size {width} x {height}: must be positive")));
        }
        if !(0.0..0.5).contains(&margin) {
            return Err(Error::Input(format!("margin {margin}: must lie in [0, 0.5)")));
        }
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in points.chunks_exact(3) {
            for k in 0..3 {
                if !p[k].is_finite() {
                    return Err(Error::Input("points contain non-finite values".into()));
                }
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let c = [(lo[0] + hi[0]) * 0.5, (lo[1] + hi[1]) * 0.5, (lo[2] + hi[2]) * 0.5];
        // Rotation: camera x = world (cos, 0, -sin) turned by yaw, camera y = -world Y,
        // camera z = looking direction.
        let (s, co) = (yaw_deg.to_radians().sin(), yaw_deg.to_radians().cos());
        // Camera position direction from the centre: (sin yaw, 0, cos yaw); it looks back along it.
        let fwd = [-s, 0.0, -co];
        let right = [co, 0.0, -s];
        let down = [0.0, -1.0, 0.0];
        let rotation = [right[0], right[1], right[2], down[0], down[1], down[2], fwd[0], fwd[1], fwd[2]];
        let fy = height as f32 * 0.5 / (15f32.to_radians().tan());
        let intrinsics = Pinhole { fx: fy, fy, cx: width as f32 * 0.5, cy: height as f32 * 0.5 };
        // Distance so that every point projects inside the margins: solve per point.
        let (half_w, half_h) = (width as f32 * (0.5 - margin), height as f32 * (0.5 - margin));
        let mut dist: f32 = 0.0;
        for p in points.chunks_exact(3) {
            let q = mat_vec(&rotation, [p[0] - c[0], p[1] - c[1], p[2] - c[2]]);
            // Need fy |q.x| / (q.z + d) <= half_w and fy |q.y| / (q.z + d) <= half_h.
            dist = dist.max(fy * q[0].abs() / half_w - q[2]);
            dist = dist.max(fy * q[1].abs() / half_h - q[2]);
        }
        let dist = dist.max(0.1);
        let rc = mat_vec(&rotation, c);
        let translation = [-rc[0], -rc[1], dist - rc[2]];
        Ok(Self { intrinsics, rotation, translation, width, height })
    }

    /// World point to camera frame.
    pub fn to_camera(&self, p: [f32; 3]) -> [f32; 3] {
        let q = mat_vec(&self.rotation, p);
        [q[0] + self.translation[0], q[1] + self.translation[1], q[2] + self.translation[2]]
    }

    /// Projects a world point to pixels; `None` at or behind the camera.
    pub fn project(&self, p: [f32; 3]) -> Option<[f32; 2]> {
        let q = self.to_camera(p);
        (q[2] > NEAR).then(|| self.intrinsics.project_point(&q))
    }

    /// Projects world points `[N, 3]` to pixels `[N]` (non-finite where behind the camera).
    pub fn project_all(&self, points: &[f32]) -> Result<Vec<[f32; 2]>> {
        if points.len() % 3 != 0 {
            return Err(Error::Input(format!("points have {} values, expected [N, 3]", points.len())));
        }
        Ok(points
            .chunks_exact(3)
            .map(|p| self.project([p[0], p[1], p[2]]).unwrap_or([f32::NAN; 2]))
            .collect())
    }
}

/// How a mesh is shaded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeshStyle {
    /// Base colour.
    pub color: [u8; 3],
    /// Ambient term in [0, 1].
    pub ambient: f32,
    /// Diffuse (Lambert) term in [0, 1].
    pub diffuse: f32,
    /// Direction towards the light in the camera frame (x right, y down, z forward); the
    /// default comes from the upper left, behind the viewer.
    pub light: [f32; 3],
    /// Interpolate vertex normals (smooth) instead of face normals (faceted).
    pub smooth: bool,
    /// No shading: every pixel gets `color`.
    pub flat_color: bool,
}

impl Default for MeshStyle {
    fn default() -> Self {
        Self { color: [200, 190, 175], ambient: 0.3, diffuse: 0.75, light: [-0.4, -0.6, -1.0], smooth: true, flat_color: false }
    }
}

/// An RGB image with a depth buffer.
#[derive(Clone, Debug)]
pub struct Canvas {
    image: RgbImage,
    /// Inverse camera depth of the nearest surface so far (0 = nothing drawn).
    inv_depth: Vec<f32>,
}

fn normalize3(v: [f32; 3]) -> [f32; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if n > 0.0 {
        [v[0] / n, v[1] / n, v[2] / n]
    } else {
        v
    }
}

fn blend(dst: &mut Rgb<u8>, c: [u8; 3], alpha: f32) {
    let a = alpha.clamp(0.0, 1.0);
    for (d, &s) in dst.0.iter_mut().zip(&c) {
        *d = (*d as f32 * (1.0 - a) + s as f32 * a).round() as u8;
    }
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: [u8; 3]) -> Self {
        Self { image: RgbImage::from_pixel(width, height, Rgb(background)), inv_depth: vec![0.0; (width * height) as usize] }
    }

    /// A canvas over a background image (e.g. a video frame for an overlay).
    pub fn from_image(image: RgbImage) -> Self {
        let n = (image.width() * image.height()) as usize;
        Self { image, inv_depth: vec![0.0; n] }
    }

    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
    pub fn image(&self) -> &RgbImage {
        &self.image
    }
    pub fn into_image(self) -> RgbImage {
        self.image
    }

    /// Rasterises a triangle mesh: `vertices` `[V, 3]` (world frame), `faces` `[F, 3]`, with a
    /// z-buffer shared with earlier draws. The view's image size must match the canvas.
    pub fn draw_mesh(&mut self, view: &View, vertices: &[f32], faces: &[[u32; 3]], style: &MeshStyle) -> Result<()> {
        check_points(vertices)?;
        let nv = vertices.len() / 3;
        if view.width != self.width() || view.height != self.height() {
            return Err(Error::Input(format!(
                "view is {}x{}, canvas {}x{}",
                view.width,
                view.height,
                self.width(),
                self.height()
            )));
        }
        if let Some((fi, f)) = faces.iter().enumerate().find(|(_, f)| f.iter().any(|&i| i as usize >= nv)) {
            return Err(Error::Input(format!("face {fi} = {f:?} indexes past {nv} vertices")));
        }
        // Camera-frame positions and (area-weighted) vertex normals.
        let cam: Vec<[f32; 3]> = vertices.chunks_exact(3).map(|p| view.to_camera([p[0], p[1], p[2]])).collect();
        let face_n = |f: &[u32; 3]| -> [f32; 3] {
            let (a, b, c) = (cam[f[0] as usize], cam[f[1] as usize], cam[f[2] as usize]);
            let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
            [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
        };
        let mut vn = vec![[0f32; 3]; nv];
        if style.smooth {
            for f in faces {
                let n = face_n(f);
                for &i in f {
                    for k in 0..3 {
                        vn[i as usize][k] += n[k];
                    }
                }
            }
            for n in vn.iter_mut() {
                *n = normalize3(*n);
            }
        }
        let light = normalize3(style.light);
        let (w, h) = (self.width() as i64, self.height() as i64);
        let k = view.intrinsics;
        for f in faces {
            let p: [[f32; 3]; 3] = [cam[f[0] as usize], cam[f[1] as usize], cam[f[2] as usize]];
            if p.iter().any(|q| q[2].is_nan() || q[2] <= NEAR || !q[0].is_finite() || !q[1].is_finite()) {
                continue;
            }
            let s: [[f32; 2]; 3] = p.map(|q| k.project_point(&q));
            let area = (s[1][0] - s[0][0]) * (s[2][1] - s[0][1]) - (s[1][1] - s[0][1]) * (s[2][0] - s[0][0]);
            if area.abs() < 1e-12 {
                continue;
            }
            let fnrm = normalize3(face_n(f));
            let xmin = (s.iter().map(|q| q[0]).fold(f32::INFINITY, f32::min).floor() as i64).max(0);
            let xmax = (s.iter().map(|q| q[0]).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).min(w - 1);
            let ymin = (s.iter().map(|q| q[1]).fold(f32::INFINITY, f32::min).floor() as i64).max(0);
            let ymax = (s.iter().map(|q| q[1]).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).min(h - 1);
            if xmin > xmax || ymin > ymax {
                continue;
            }
            let iz = p.map(|q| 1.0 / q[2]);
            for py in ymin..=ymax {
                for px in xmin..=xmax {
                    let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
                    let e = |a: [f32; 2], b: [f32; 2]| (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
                    let l0 = e(s[1], s[2]) / area;
                    let l1 = e(s[2], s[0]) / area;
                    let l2 = e(s[0], s[1]) / area;
                    if l0 < 0.0 || l1 < 0.0 || l2 < 0.0 {
                        continue;
                    }
                    let inv = l0 * iz[0] + l1 * iz[1] + l2 * iz[2];
                    let idx = (py * w + px) as usize;
                    if inv <= self.inv_depth[idx] {
                        continue;
                    }
                    self.inv_depth[idx] = inv;
                    let color = if style.flat_color {
                        style.color
                    } else {
                        let mut n = if style.smooth {
                            // Perspective-correct interpolation of the vertex normals.
                            let b = [l0 * iz[0] / inv, l1 * iz[1] / inv, l2 * iz[2] / inv];
                            let (a, bb, c) = (vn[f[0] as usize], vn[f[1] as usize], vn[f[2] as usize]);
                            normalize3([
                                b[0] * a[0] + b[1] * bb[0] + b[2] * c[0],
                                b[0] * a[1] + b[1] * bb[1] + b[2] * c[1],
                                b[0] * a[2] + b[1] * bb[2] + b[2] * c[2],
                            ])
                        } else {
                            fnrm
                        };
                        // Two-sided: face the normal towards the viewer (camera at the origin).
                        let q = [
                            l0 * p[0][0] + l1 * p[1][0] + l2 * p[2][0],
                            l0 * p[0][1] + l1 * p[1][1] + l2 * p[2][1],
                            l0 * p[0][2] + l1 * p[1][2] + l2 * p[2][2],
                        ];
                        if n[0] * q[0] + n[1] * q[1] + n[2] * q[2] > 0.0 {
                            n = [-n[0], -n[1], -n[2]];
                        }
                        let lam = (n[0] * light[0] + n[1] * light[1] + n[2] * light[2]).max(0.0);
                        let shade = (style.ambient + style.diffuse * lam).min(1.0);
                        style.color.map(|c| (c as f32 * shade).round().clamp(0.0, 255.0) as u8)
                    };
                    self.image.put_pixel(px as u32, py as u32, Rgb(color));
                }
            }
        }
        Ok(())
    }

    /// Draws filled discs of `radius` pixels at 2D points (non-finite points are skipped).
    pub fn draw_points(&mut self, points: &[[f32; 2]], radius: f32, color: [u8; 3]) {
        for p in points {
            if !(p[0].is_finite() && p[1].is_finite()) {
                continue;
            }
            let r = radius.max(0.5);
            let (x0, x1) = ((p[0] - r - 1.0).floor() as i64, (p[0] + r + 1.0).ceil() as i64);
            let (y0, y1) = ((p[1] - r - 1.0).floor() as i64, (p[1] + r + 1.0).ceil() as i64);
            for y in y0.max(0)..=y1.min(self.height() as i64 - 1) {
                for x in x0.max(0)..=x1.min(self.width() as i64 - 1) {
                    let d = ((x as f32 + 0.5 - p[0]).powi(2) + (y as f32 + 0.5 - p[1]).powi(2)).sqrt();
                    // One pixel of anti-aliasing at the rim.
                    let a = (r + 0.5 - d).clamp(0.0, 1.0);
                    if a > 0.0 {
                        blend(self.image.get_pixel_mut(x as u32, y as u32), color, a);
                    }
                }
            }
        }
    }

    /// Draws line segments of `width` pixels (segments with a non-finite end are skipped).
    pub fn draw_segments(&mut self, segments: &[([f32; 2], [f32; 2])], width: f32, color: [u8; 3]) {
        let r = (width * 0.5).max(0.5);
        for &(a, b) in segments {
            if !(a[0].is_finite() && a[1].is_finite() && b[0].is_finite() && b[1].is_finite()) {
                continue;
            }
            let x0 = (a[0].min(b[0]) - r - 1.0).floor().max(0.0) as i64;
            let x1 = ((a[0].max(b[0]) + r + 1.0).ceil() as i64).min(self.width() as i64 - 1);
            let y0 = (a[1].min(b[1]) - r - 1.0).floor().max(0.0) as i64;
            let y1 = ((a[1].max(b[1]) + r + 1.0).ceil() as i64).min(self.height() as i64 - 1);
            let d = [b[0] - a[0], b[1] - a[1]];
            let len2 = d[0] * d[0] + d[1] * d[1];
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let q = [x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]];
                    let t = if len2 > 0.0 { ((q[0] * d[0] + q[1] * d[1]) / len2).clamp(0.0, 1.0) } else { 0.0 };
                    let dist = ((q[0] - t * d[0]).powi(2) + (q[1] - t * d[1]).powi(2)).sqrt();
                    let al = (r + 0.5 - dist).clamp(0.0, 1.0);
                    if al > 0.0 {
                        blend(self.image.get_pixel_mut(x as u32, y as u32), color, al);
                    }
                }
            }
        }
    }

    /// Draws a skeleton: a segment from every point to its parent (`parents[i] < 0`: none), then
    /// the points. Errors if `parents` and `points` differ in length or a parent is out of range.
    pub fn draw_skeleton(
        &mut self,
        points: &[[f32; 2]],
        parents: &[i32],
        line_width: f32,
        line_color: [u8; 3],
        point_radius: f32,
        point_color: [u8; 3],
    ) -> Result<()> {
        if points.len() != parents.len() {
            return Err(Error::Input(format!("{} points but {} parents", points.len(), parents.len())));
        }
        let mut segs = Vec::new();
        for (i, &p) in parents.iter().enumerate() {
            if p >= 0 {
                let p = p as usize;
                if p >= points.len() {
                    return Err(Error::Input(format!("point {i} has parent {p}, past {} points", points.len())));
                }
                segs.push((points[p], points[i]));
            }
        }
        self.draw_segments(&segs, line_width, line_color);
        self.draw_points(points, point_radius, point_color);
        Ok(())
    }
}

/// Averages `factor x factor` pixel blocks (anti-aliasing after rendering at a larger size).
pub fn downsample(image: &RgbImage, factor: u32) -> Result<RgbImage> {
    if factor == 0 || image.width() % factor != 0 || image.height() % factor != 0 {
        return Err(Error::Input(format!(
            "downsample factor {factor} must divide the image size {}x{}",
            image.width(),
            image.height()
        )));
    }
    let (w, h) = (image.width() / factor, image.height() / factor);
    let n = factor * factor;
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let mut acc = [0u32; 3];
        for dy in 0..factor {
            for dx in 0..factor {
                let p = image.get_pixel(x * factor + dx, y * factor + dy);
                for (a, &c) in acc.iter_mut().zip(&p.0) {
                    *a += c as u32;
                }
            }
        }
        Rgb(acc.map(|a| ((a + n / 2) / n) as u8))
    }))
}

/// Places images side by side (top-aligned) on a background colour.
pub fn hstack(images: &[RgbImage], background: [u8; 3]) -> Result<RgbImage> {
    if images.is_empty() {
        return Err(Error::Input("no images to stack".into()));
    }
    let w: u32 = images.iter().map(|i| i.width()).sum();
    let h = images.iter().map(|i| i.height()).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(w, h, Rgb(background));
    let mut x0 = 0;
    for img in images {
        for (x, y, p) in img.enumerate_pixels() {
            out.put_pixel(x0 + x, y, *p);
        }
        x0 += img.width();
    }
    Ok(out)
}

/// A front picture of a Y-up body mesh (SMPL frame) on a light background, `width x height`
/// pixels, shaded, anti-aliased (rendered at twice the size and averaged).
pub fn render_body_front(vertices: &[f32], faces: &[[u32; 3]], width: u32, height: u32) -> Result<RgbImage> {
    render_body(vertices, faces, width, height, 0.0)
}

/// As [`render_body_front`], the camera turned by `yaw_deg` about the vertical axis (towards
/// the body's left for positive angles).
pub fn render_body(vertices: &[f32], faces: &[[u32; 3]], width: u32, height: u32, yaw_deg: f32) -> Result<RgbImage> {
    let view = View::body_front(vertices, width * 2, height * 2, yaw_deg, 0.04)?;
    let mut canvas = Canvas::new(width * 2, height * 2, [245, 245, 242]);
    canvas.draw_mesh(&view, vertices, faces, &MeshStyle::default())?;
    downsample(canvas.image(), 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(w: u32, h: u32) -> View {
        View::new(Pinhole { fx: 100.0, fy: 100.0, cx: w as f32 * 0.5, cy: h as f32 * 0.5 }, w, h)
    }

    #[test]
    fn projects_with_opencv_axes() {
        let v = view(200, 100);
        assert_eq!(v.project([0.0, 0.0, 2.0]), Some([100.0, 50.0]));
        // x right, y down.
        let p = v.project([0.2, 0.1, 2.0]).unwrap();
        assert!((p[0] - 110.0).abs() < 1e-4 && (p[1] - 55.0).abs() < 1e-4);
        assert_eq!(v.project([0.0, 0.0, -1.0]), None);
    }

    #[test]
    fn z_buffer_keeps_the_nearest_triangle() {
        let v = view(64, 64);
        let mut c = Canvas::new(64, 64, [0, 0, 0]);
        // A far red square then a near green triangle over its centre (both facing the camera).
        let far = [-1.0f32, -1.0, 4.0, 1.0, -1.0, 4.0, 1.0, 1.0, 4.0, -1.0, 1.0, 4.0];
        let flat = |color| MeshStyle { color, flat_color: true, ..MeshStyle::default() };
        c.draw_mesh(&v, &far, &[[0, 1, 2], [0, 2, 3]], &flat([255, 0, 0])).unwrap();
        let near = [-0.2f32, -0.2, 2.0, 0.2, -0.2, 2.0, 0.0, 0.2, 2.0];
        c.draw_mesh(&v, &near, &[[0, 1, 2]], &flat([0, 255, 0])).unwrap();
        assert_eq!(c.image().get_pixel(32, 32).0, [0, 255, 0]);
        assert_eq!(c.image().get_pixel(10, 10).0, [255, 0, 0]);
        // A square between the two covers the far one but not the near triangle.
        let mid: Vec<f32> = far.iter().enumerate().map(|(i, &x)| if i % 3 == 2 { 3.0 } else { x * 0.75 }).collect();
        c.draw_mesh(&v, &mid, &[[0, 1, 2], [0, 2, 3]], &flat([0, 0, 255])).unwrap();
        assert_eq!(c.image().get_pixel(32, 32).0, [0, 255, 0]);
        assert_eq!(c.image().get_pixel(10, 10).0, [0, 0, 255]);
        assert_eq!(c.image().get_pixel(1, 1).0, [0, 0, 0], "outside the square");
    }

    #[test]
    fn lambert_shading_is_brightest_facing_the_light() {
        let v = view(32, 32);
        let quad = [-1.0f32, -1.0, 2.0, 1.0, -1.0, 2.0, 1.0, 1.0, 2.0, -1.0, 1.0, 2.0];
        let faces = [[0u32, 1, 2], [0, 2, 3]];
        let shade = |light: [f32; 3]| {
            let mut c = Canvas::new(32, 32, [0, 0, 0]);
            let style = MeshStyle { color: [200, 200, 200], ambient: 0.2, diffuse: 0.8, light, smooth: false, flat_color: false };
            c.draw_mesh(&v, &quad, &faces, &style).unwrap();
            c.image().get_pixel(16, 16).0[0]
        };
        // The quad faces the camera (-z); a light behind the camera lights it fully.
        assert_eq!(shade([0.0, 0.0, -1.0]), 200);
        assert_eq!(shade([0.0, -1.0, 0.0]), 40, "grazing light leaves the ambient term");
    }

    #[test]
    fn body_front_frames_every_point_and_puts_the_left_side_right() {
        let pts = [0.8f32, 0.0, 0.0, -0.8, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0, -1.2, -0.1];
        let v = View::body_front(&pts, 300, 400, 0.0, 0.05).unwrap();
        let px = v.project_all(&pts).unwrap();
        for p in &px {
            assert!(p[0] >= 14.9 && p[0] <= 285.1 && p[1] >= 19.9 && p[1] <= 380.1, "{p:?} outside the margins");
        }
        assert!(px[0][0] > px[1][0], "+X (the body's left) on the image right");
        assert!(px[2][1] < px[3][1], "+Y up in the image");
        // Turned 90 degrees towards the body's left: +Z (the front) appears on the image left.
        let side = View::body_front(&pts, 300, 400, 90.0, 0.05).unwrap();
        let a = side.project([0.0, 0.0, 0.3]).unwrap();
        let b = side.project([0.0, 0.0, -0.3]).unwrap();
        assert!(a[0] < b[0]);
        assert!(View::body_front(&[], 10, 10, 0.0, 0.1).is_err());
        assert!(View::body_front(&pts, 10, 10, 0.0, 0.6).is_err());
    }

    #[test]
    fn overlays_and_errors() {
        let mut c = Canvas::new(40, 40, [255, 255, 255]);
        c.draw_points(&[[20.0, 20.0], [f32::NAN, 3.0]], 3.0, [0, 0, 0]);
        assert_eq!(c.image().get_pixel(20, 20).0, [0, 0, 0]);
        assert_eq!(c.image().get_pixel(30, 30).0, [255, 255, 255]);
        c.draw_segments(&[([0.0, 5.5], [40.0, 5.5])], 2.0, [255, 0, 0]);
        assert_eq!(c.image().get_pixel(17, 5).0, [255, 0, 0]);
        assert!(c.draw_skeleton(&[[1.0, 1.0]], &[-1, 0], 1.0, [0; 3], 1.0, [0; 3]).is_err());
        assert!(c.draw_skeleton(&[[1.0, 1.0], [5.0, 5.0]], &[-1, 0], 1.0, [0; 3], 1.0, [0; 3]).is_ok());
        let v = view(40, 40);
        assert!(c.draw_mesh(&v, &[0.0, 0.0, 1.0], &[[0, 1, 2]], &MeshStyle::default()).is_err());
        assert!(c.draw_mesh(&view(20, 20), &[0.0, 0.0, 1.0], &[], &MeshStyle::default()).is_err());
        let small = downsample(c.image(), 2).unwrap();
        assert_eq!((small.width(), small.height()), (20, 20));
        assert!(downsample(c.image(), 3).is_err());
        let both = hstack(&[small.clone(), small], [0, 0, 0]).unwrap();
        assert_eq!((both.width(), both.height()), (40, 20));
    }

    #[test]
    fn render_body_front_draws_a_silhouette() {
        // A tetrahedron stands in for a body.
        let v = [0.0f32, 1.0, 0.0, -0.5, -1.0, 0.3, 0.5, -1.0, 0.3, 0.0, -1.0, -0.5];
        let f = [[0u32, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]];
        let img = render_body_front(&v, &f, 64, 80).unwrap();
        assert_eq!((img.width(), img.height()), (64, 80));
        let bg = img.get_pixel(1, 1).0;
        assert_ne!(img.get_pixel(32, 50).0, bg, "the body covers the image centre");
    }
}
