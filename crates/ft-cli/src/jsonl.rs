//! Reading JSONL inputs with errors that name the file and line, and writing outputs atomically
//! (to a temporary file in the same directory, renamed into place only when complete).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// Reads a JSONL file whose lines are objects with a string field `field`.
pub fn read_field(path: &Path, field: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let n = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        let lineno = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() && i + 1 == n {
            break; // the newline ending the last line
        }
        let at = || format!("{}:{lineno}", path.display());
        let line = std::str::from_utf8(raw).map_err(|e| anyhow!("{}: invalid UTF-8 ({e})", at()))?;
        if line.trim().is_empty() {
            bail!("{}: empty line (expected a JSON object with a \"{field}\" field)", at());
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow!("{}: not valid JSON: {e}", at()))?;
        match value.get(field) {
            Some(serde_json::Value::String(s)) => out.push(s.clone()),
            Some(other) => bail!("{}: \"{field}\" must be a string, found {}", at(), type_name(other)),
            None if value.is_object() => bail!("{}: no \"{field}\" field", at()),
            None => bail!("{}: expected a JSON object with a \"{field}\" field, found {}", at(), type_name(&value)),
        }
    }
    Ok(out)
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An output file that appears at its path only once it is complete.
pub struct AtomicWriter {
    path: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicWriter {
    /// Creates the temporary file next to `path` (so that a path that cannot be written fails
    /// before any work is done).
    pub fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if path.is_dir() {
            bail!("{}: is a directory", path.display());
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(".ft-partial-");
        // tempfile creates files readable by their owner only; an output is a normal file, with
        // the permissions the umask gives (as `ft train`'s outputs).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write {} (directory {})", path.display(), dir.display()))?;
        Ok(Self { path: path.to_path_buf(), file: BufWriter::new(tmp) })
    }

    /// Writes one JSON line.
    pub fn write_json<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.file, value).with_context(|| format!("writing {}", self.path.display()))?;
        self.file.write_all(b"\n").with_context(|| format!("writing {}", self.path.display()))
    }

    /// Flushes and renames the file into place.
    pub fn commit(self) -> Result<()> {
        let tmp = self.file.into_inner().map_err(|e| anyhow!("writing {}: {}", self.path.display(), e.error()))?;
        tmp.as_file().sync_all().with_context(|| format!("writing {}", self.path.display()))?;
        tmp.persist(&self.path).map_err(|e| anyhow!("writing {}: {}", self.path.display(), e.error))?;
        Ok(())
    }
}
