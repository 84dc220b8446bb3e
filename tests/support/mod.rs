//! Helpers shared by the workspace's tests (included with `#[path]` from each crate's tests).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("tests/fixtures").is_dir())
        .expect("workspace root")
        .to_path_buf()
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// The shared folder beside the repository (`FT_SHARED` overrides `../shared`).
pub fn shared() -> PathBuf {
    std::env::var_os("FT_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared"))
}

/// sentence-transformers' all-MiniLM-L6-v2 in HF layout: `FT_MINILM_DIR`, else
/// `~/.cache/ft-minilm`, fetched with `../shared/scripts/fetch-minilm.sh` when missing.
pub fn minilm() -> PathBuf {
    let dir = std::env::var_os("FT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ft-minilm"));
    if !dir.join("model.safetensors").is_file() {
        let script = shared().join("scripts/fetch-minilm.sh");
        let status = Command::new("bash").arg(&script).arg(&dir).status().expect("running fetch-minilm.sh");
        assert!(status.success(), "{} {} failed", script.display(), dir.display());
    }
    dir
}

/// All tensors of a safetensors file as (shape, f32 values) — ints converted too.
pub fn read_safetensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                safetensors::Dtype::I64 => {
                    data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
