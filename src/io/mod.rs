//! Reading and writing files: NumPy archives (body models), and later keypoint formats,
//! mocap and calibration.

pub mod npz;
