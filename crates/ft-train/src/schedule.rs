//! Learning-rate schedules as transformers' `get_scheduler` builds them (`LambdaLR` over the
//! optimizer step count): the factor applied to the peak learning rate at each step.
//!
//! Computed from the step alone, so a resumed run needs no scheduler state beyond the step.

use crate::args::SchedulerType;

/// The learning rate for optimizer step `step` (0-based) of `total`, with `warmup` warmup steps.
pub fn learning_rate(kind: SchedulerType, peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
    peak * factor(kind, step, total, warmup)
}

fn factor(kind: SchedulerType, step: usize, total: usize, warmup: usize) -> f64 {
    let (s, t, w) = (step as f64, total as f64, warmup as f64);
    if kind == SchedulerType::Constant {
        return 1.0;
    }
    if step < warmup {
        return s / w.max(1.0);
    }
    match kind {
        SchedulerType::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
        SchedulerType::Cosine => {
            let progress = (s - w) / (t - w).max(1.0);
            (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
        }
        SchedulerType::ConstantWithWarmup | SchedulerType::Constant => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_with_warmup_matches_transformers() {
        // get_linear_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10)
        let got: Vec<f64> = (0..11).map(|s| factor(SchedulerType::Linear, s, 10, 2)).collect();
        let want = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn cosine_ends_at_zero_and_constant_is_flat() {
        assert!((factor(SchedulerType::Cosine, 10, 10, 0)).abs() < 1e-12);
        assert!((factor(SchedulerType::Cosine, 5, 10, 0) - 0.5).abs() < 1e-12);
        assert_eq!(factor(SchedulerType::Constant, 3, 10, 5), 1.0);
        assert_eq!(factor(SchedulerType::ConstantWithWarmup, 1, 10, 4), 0.25);
    }
}
