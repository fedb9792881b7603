//! Writing a fitted [`crate::motion::Motion`] for DCCs and pipelines: glTF 2.0 binary and USD
//! (UsdSkel, text), both written atomically (temporary file + rename); and overlay pictures.

pub mod gltf;
pub mod overlay;
pub mod usd;
