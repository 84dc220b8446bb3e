//! glibc malloc tuning for training processes.
//!
//! glibc's malloc serves every allocation above 32 MiB with its own `mmap` and unmaps it on
//! free, so each training step's embedding-sized tensors (gradients, AdamW moments: 47 MB each
//! for a 30k × 384 vocabulary) page-fault fresh zeroed memory — 40% of a step when training
//! all-MiniLM-L6-v2 on CoNLL-2003. With `MALLOC_MMAP_MAX_=0` and a high `MALLOC_TRIM_THRESHOLD_`
//! freed memory stays in the heap and is reused (the step goes from ~300 to ~160 ms). glibc reads
//! these only at start-up, so a process re-executes itself once with them set:
//! [`reexec_with_tuning`] (`ft train`, and the training benchmarks, so that they measure what
//! `ft train` runs).

/// Re-executes the current program with the same arguments and glibc's malloc tuned (see the
/// module docs) — unless `MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_` or `FT_KEEP_MALLOC` is
/// already set. Returns only if it did not re-execute (then the program goes on as is); a no-op
/// off glibc Linux.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_tuning() {
    use std::os::unix::process::CommandExt;
    if ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "FT_KEEP_MALLOC"].iter().any(|v| std::env::var_os(v).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_MMAP_MAX_", "0")
        .env("MALLOC_TRIM_THRESHOLD_", "68719476736")
        .exec();
    tracing::debug!(%error, "could not re-execute with malloc tuning; going on without it");
}

/// Re-executes with glibc's malloc tuned: nothing to do off glibc Linux.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_tuning() {}
