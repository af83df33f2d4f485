//! Wall-clock timestamps derived from tokio's clock, so job times follow `tokio::time`.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall0: Timestamp,
    mono0: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            wall0: Timestamp::now(),
            mono0: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    pub(crate) fn at(&self, instant: Instant) -> Timestamp {
        let since = SignedDuration::try_from(instant.saturating_duration_since(self.mono0))
            .unwrap_or(SignedDuration::MAX);
        let ts = self.wall0.saturating_add(since).unwrap_or(self.wall0);
        // Postgres keeps microseconds: a timestamp read back from the API must compare
        // equal to the stored one in filters.
        Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts)
    }
}

/// AWX's timestamp format: UTC, microseconds, `Z`.
pub(crate) fn iso(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses a filter value the way Django accepts datetimes: with an offset, or naive
/// (taken as UTC), or a bare date.
pub(crate) fn parse_filter_time(text: &str) -> Option<Timestamp> {
    use k8s_openapi::jiff::civil::{Date, DateTime};
    use k8s_openapi::jiff::tz::TimeZone;
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let naive = text.parse::<DateTime>().ok().or_else(|| {
        text.parse::<Date>()
            .ok()
            .map(|d| d.to_datetime(Default::default()))
    })?;
    naive.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

impl Clock {
    /// When the simulator started: the creation time of its templates.
    pub(crate) fn origin(&self) -> Timestamp {
        self.wall0
    }
}
