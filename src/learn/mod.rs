//! Learning the prior: mocap retargeting, synthetic samples, training, the SMPLify baseline's GMM pose
//! prior, and (later) the scorer, preference optimisation and reward fine-tuning.

pub mod eval;
pub mod gmm;
pub mod mocap;
pub mod reward;
pub mod synth;
pub mod train;
pub mod tune;
