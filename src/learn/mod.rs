//! Learning the prior: mocap retargeting, synthetic samples, training, the SMPLify baseline's GMM pose
//! prior, the evaluation, and the prior's alignment without 3D labels: the HMR-Scorer, Diffusion-DPO,
//! data cleaning (ADHMR) and reward fine-tuning (DrPose), on shared fine-tuning plumbing (`tune`).

pub mod clean;
pub mod dpo;
pub mod eval;
pub mod gmm;
pub mod mocap;
pub mod reward;
pub mod scorer;
pub mod synth;
pub mod train;
pub mod tune;
