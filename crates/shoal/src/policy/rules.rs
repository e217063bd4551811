//! The two recommendation rules: the threshold policy's single step and target tracking's
//! proportional count.

/// The seed's rule: one step past a threshold.
pub(super) fn step(current: u32, value: f64, up: f64, down: f64) -> u32 {
    if value > up {
        current.saturating_add(1)
    } else if value < down {
        current.saturating_sub(1)
    } else {
        current
    }
}

/// Target tracking: `ceil(n x value / target)`, or `current` within the tolerance.
pub(super) fn target_count(current: u32, n: u32, value: f64, target: f64, tolerance: f64) -> u32 {
    let ratio = value / target;
    if (ratio - 1.0).abs() <= tolerance {
        return current;
    }
    let want = (f64::from(n) * ratio).ceil();
    if want.is_finite() && want >= 0.0 {
        want.min(f64::from(u32::MAX)) as u32
    } else {
        current
    }
}
