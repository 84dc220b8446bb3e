//! What the machine gives the kernels: the CPU model, the SIMD level and the thread count.
//! Burn's CPU kernels pick their code path from the SIMD level at run time, and training speed
//! depends on it more than on anything else (AVX-512 machines train about 3x faster than
//! AVX2-only ones here), so `ft` logs it at `debug` level and every benchmark states it.

/// The machine as the kernels see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`, when readable.
    pub cpu: Option<String>,
    /// The widest SIMD level the CPU offers: `x86-64-v4 (AVX-512)`, `x86-64-v3 (AVX2)`,
    /// `x86-64 (SSE2 only)`, or the architecture's name elsewhere.
    pub simd: &'static str,
    /// Threads the kernels use (one per available core).
    pub threads: usize,
}

impl Machine {
    /// Reads the machine this process runs on.
    pub fn current() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Self { cpu, simd: simd_level(), threads }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cpu {
            Some(cpu) => write!(f, "{cpu}, {}, {} threads", self.simd, self.threads),
            None => write!(f, "{}, {} threads", self.simd, self.threads),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> &'static str {
    if std::arch::is_x86_feature_detected!("avx512f") {
        "x86-64-v4 (AVX-512)"
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        "x86-64-v3 (AVX2, no AVX-512)"
    } else {
        "x86-64 (no AVX2)"
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_level() -> &'static str {
    std::env::consts::ARCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let m = Machine::current();
        assert!(m.threads >= 1);
        let text = m.to_string();
        assert!(text.contains(m.simd) && text.contains("threads"), "{text}");
    }
}
