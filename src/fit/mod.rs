//! The public fitting pipelines (single frame, multi-view, video) built from the body model,
//! the prior and the guidance terms, and the optimisation baseline.

pub mod smplify;
