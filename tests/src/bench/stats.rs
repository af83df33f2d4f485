//! Order statistics of samples.

use std::time::Duration;

/// The `p`-th percentile (0 < p <= 100) by nearest rank; `None` without samples.
pub fn percentile(mut samples: Vec<Duration>, p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

pub fn median(samples: Vec<Duration>) -> Option<Duration> {
    percentile(samples, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(
            percentile(ms(&hundred), 50.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            percentile(ms(&hundred), 99.0),
            Some(Duration::from_millis(99))
        );
        assert_eq!(
            percentile(ms(&[5, 1, 3]), 50.0),
            Some(Duration::from_millis(3))
        );
        assert_eq!(percentile(ms(&[7]), 99.0), Some(Duration::from_millis(7)));
        assert_eq!(median(Vec::new()), None);
    }
}
