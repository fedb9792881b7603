//! Reading and writing files: NumPy archives (body models), 2D keypoint formats, and mocap.

pub mod bvh;
pub mod keypoints;
pub mod npz;
