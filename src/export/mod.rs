//! Writing a fitted [`crate::motion::Motion`] for DCCs and pipelines: glTF 2.0 binary and USD
//! (UsdSkel, text). Both write atomically (temporary file + rename).

pub mod gltf;
pub mod usd;
