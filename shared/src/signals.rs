//! The declarative request pattern: a timestamp in spec asks, one in status acknowledges.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::jiff;

use crate::instance::{ComputeInstanceStatus, JobType};

/// Where a signal stands at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Nothing was asked.
    Absent,
    /// Asked no later than its acknowledgement: already done, ignore.
    Done,
    /// Asked for a moment still in the future.
    Scheduled(Timestamp),
    /// Asked, not acknowledged, and its time has come.
    Due(Timestamp),
}

/// Classifies a request against its acknowledgement.
pub fn signal(
    requested: Option<Timestamp>,
    acknowledged: Option<Timestamp>,
    now: Timestamp,
) -> Signal {
    let Some(requested) = requested.map(whole_seconds) else {
        return Signal::Absent;
    };
    if acknowledges(acknowledged, requested) {
        Signal::Done
    } else if requested > whole_seconds(now) {
        Signal::Scheduled(requested)
    } else {
        Signal::Due(requested)
    }
}

/// Whether `acknowledged` answers `requested`: a request no later than its acknowledgement
/// is done, so the plugin waits for exactly what the runner treats as done.
pub fn acknowledges(acknowledged: Option<Timestamp>, requested: Timestamp) -> bool {
    acknowledged.is_some_and(|ack| whole_seconds(requested) <= whole_seconds(ack))
}

/// The time to write for a request: `wanted` in whole seconds, moved a whole second past
/// the last acknowledgement when it is not later (else it would read as already done).
pub fn next_request(wanted: Timestamp, acknowledged: Option<Timestamp>) -> Timestamp {
    let wanted = whole_seconds(wanted);
    match acknowledged.map(whole_seconds) {
        Some(ack) if wanted <= ack => ack.checked_add(SignedDuration::from_secs(1)).unwrap_or(ack),
        _ => wanted,
    }
}

/// The restart request a new one is compared against: the later of the acknowledgement
/// (`status.lastRestartedAt`) and the request the newest restart job served, so a request
/// whose job failed is not run again.
pub fn restart_acknowledged(status: Option<&ComputeInstanceStatus>) -> Option<Timestamp> {
    let status = status?;
    let acked = status.last_restarted_at.as_ref().map(|t| t.0);
    let served = crate::jobs::latest_of_type(&status.jobs, JobType::Restart)
        .and_then(|j| j.requested_at.as_ref().map(|t| t.0));
    acked.max(served).map(whole_seconds)
}

/// Time from `now` until `at`, zero when `at` has passed.
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Kubernetes stores `metav1.Time` in whole seconds, so an acknowledgement written back
/// loses a request's fraction; compare at that precision or a request is never done.
pub fn whole_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// Parse error for a user-supplied time.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("invalid time {input:?}: use RFC 3339 like 2026-11-22T10:00:00Z")]
    Invalid { input: String },
    #[error("invalid duration {input:?}: use a positive duration like 30s, 10m or 2h30m")]
    InvalidDuration { input: String },
}

/// Parses an RFC 3339 timestamp (`2026-11-22T10:00:00Z`, offsets allowed).
pub fn parse_timestamp(input: &str) -> Result<Timestamp, TimeError> {
    input
        .trim()
        .parse::<Timestamp>()
        .map_err(|_| TimeError::Invalid {
            input: input.to_string(),
        })
}

/// Parses a positive duration like `90s`, `10m`, `2h30m`, `1d` into whole seconds.
pub fn parse_duration_secs(input: &str) -> Result<u64, TimeError> {
    let d = parse_duration(input)?;
    if d.subsec_nanos() != 0 {
        return Err(TimeError::InvalidDuration {
            input: input.to_string(),
        });
    }
    Ok(d.as_secs())
}

/// Parses a positive duration in Go's `time.ParseDuration` syntax (`500ms`, `1m30s`,
/// `1.5h`, `300us`; units ns, us, µs, ms, s, m, h; an optional `+`), which the upstream
/// operator's settings use, plus `d` for days.
pub fn parse_duration(input: &str) -> Result<std::time::Duration, TimeError> {
    let err = || TimeError::InvalidDuration {
        input: input.to_string(),
    };
    let mut rest = input.trim();
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let int = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac = "";
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            frac = &after[..len];
            rest = &after[len..];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(err());
        }
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| !c.is_ascii_digit() && c != '.')
                .len();
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let mut part = whole.checked_mul(unit_ns).ok_or_else(err)?;
        if !frac.is_empty() {
            // Digits past nanosecond precision cannot change the result.
            let digits = &frac[..frac.len().min(30)];
            let scale = 10u128.pow(u32::try_from(digits.len()).map_err(|_| err())?);
            let f: u128 = digits.parse().map_err(|_| err())?;
            part = part
                .checked_add(f.checked_mul(unit_ns).ok_or_else(err)? / scale)
                .ok_or_else(err)?;
        }
        total = total.checked_add(part).ok_or_else(err)?;
    }
    if total == 0 {
        return Err(err());
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| err())?;
    Ok(std::time::Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn requests_move_past_the_last_acknowledgement() {
        let now = ts("2026-11-22T10:00:00.5Z");
        assert_eq!(next_request(now, None), ts("2026-11-22T10:00:00Z"));
        let ack = ts("2026-11-22T10:00:00Z");
        assert_eq!(next_request(now, Some(ack)), ts("2026-11-22T10:00:01Z"));
        assert!(acknowledges(Some(ack), ts("2026-11-22T10:00:00.9Z")));
        assert!(!acknowledges(Some(ack), next_request(now, Some(ack))));
        assert!(!acknowledges(None, ack));
    }
}
