//! The declarative request pattern: a timestamp in spec asks, one in status acknowledges.

use jiff::Timestamp;
use k8s_openapi::jiff;

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
    let acknowledged = acknowledged.map(whole_seconds);
    if acknowledged.is_some_and(|ack| requested <= ack) {
        Signal::Done
    } else if requested > whole_seconds(now) {
        Signal::Scheduled(requested)
    } else {
        Signal::Due(requested)
    }
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

/// Parses a positive duration like `500ms`, `90s`, `10m`, `2h30m` or `1d`.
pub fn parse_duration(input: &str) -> Result<std::time::Duration, TimeError> {
    let err = || TimeError::InvalidDuration {
        input: input.to_string(),
    };
    let text = input.trim();
    let mut total_ms: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                Some('s') => (1_000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                _ => return Err(err()),
            }
        };
        rest = &rest[len..];
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(err)?;
    }
    if total_ms == 0 {
        return Err(err());
    }
    Ok(std::time::Duration::from_millis(total_ms))
}
