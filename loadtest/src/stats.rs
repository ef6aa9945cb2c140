//! Percentiles and summaries of latency samples (pure, unit-tested).

use std::time::Duration;

/// p50/p90/p99/max of a set of samples, plus their count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 90th percentile (nearest rank).
    pub p90: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// The largest sample.
    pub max: Duration,
}

/// The `p`-th percentile (0 < p <= 100) of `sorted` by the nearest-rank method: the
/// smallest sample such that at least p% of the samples are <= it. Nearest rank always
/// returns a real sample (no interpolation), so a p99 of 100 samples is the 99th one.
/// `None` for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // rank = ceil(p/100 * n), at least 1.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

/// Summarizes `samples` (any order). All zero for no samples.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |p| percentile(&sorted, p).unwrap_or_default();
    Summary {
        count: sorted.len(),
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

/// Milliseconds with three decimals, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_vec(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_millis(x)).collect()
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let s = ms_vec(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 90.0), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn small_sets_round_up() {
        let s = ms_vec(&[10, 20, 30]);
        // ceil(0.5 * 3) = 2 -> 20; ceil(0.9 * 3) = 3 -> 30.
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&s, 90.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&[Duration::from_millis(7)], 99.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summarize_sorts_its_input() {
        let s = summarize(&ms_vec(&[5, 1, 4, 2, 3]));
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, Duration::from_millis(3));
        assert_eq!(s.p90, Duration::from_millis(5));
        assert_eq!(s.max, Duration::from_millis(5));
        assert_eq!(summarize(&[]), Summary::default());
    }

    #[test]
    fn ms_rounds_to_microseconds() {
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
        assert_eq!(ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}
