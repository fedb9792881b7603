//! Learning the prior: synthetic samples from mocap, training, and (later) the scorer,
//! preference optimisation and reward fine-tuning.

pub mod gmm;
pub mod synth;
