//! 2D keypoint file formats (in progress).
