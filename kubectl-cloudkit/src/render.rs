//! Text building blocks shared by every verb: tables, colour, ages, durations, json / yaml.
//!
//! Everything here is a pure function of its inputs (the clock is a parameter), so the
//! output of each verb is unit-tested as a golden string.

use cloudkit_shared::{JobState, Phase};
use k8s_openapi::jiff::Timestamp;
use owo_colors::OwoColorize;
use serde::Serialize;

use crate::error::Error;

/// Whether escape codes may be written. Decided once per stream, passed to renderers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    pub colour: bool,
}

impl Palette {
    pub const PLAIN: Self = Self { colour: false };
    pub const COLOUR: Self = Self { colour: true };

    /// Colour only on a terminal that supports it, and never with `NO_COLOR`.
    pub fn detect(stream: owo_colors::Stream, choice: crate::cli::ColorChoice) -> Self {
        use crate::cli::ColorChoice;
        let colour = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                // no-color.org: any non-empty value disables colour.
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                let terminal = match stream {
                    owo_colors::Stream::Stdout => {
                        std::io::IsTerminal::is_terminal(&std::io::stdout())
                    }
                    owo_colors::Stream::Stderr => {
                        std::io::IsTerminal::is_terminal(&std::io::stderr())
                    }
                };
                // owo-colors (supports-color) knows dumb terminals and CI settings.
                let probe = format!("{}", "x".if_supports_color(stream, |t| t.green()));
                !no_color && terminal && probe != "x"
            }
        };
        Self { colour }
    }

    pub fn paint(self, text: &str, paint: Paint) -> String {
        if !self.colour || text.is_empty() {
            return text.to_string();
        }
        match paint {
            Paint::None => text.to_string(),
            Paint::Green => text.green().to_string(),
            Paint::Red => text.red().to_string(),
            Paint::Yellow => text.yellow().to_string(),
            Paint::Cyan => text.cyan().to_string(),
            Paint::Bold => text.bold().to_string(),
            Paint::Dim => text.dimmed().to_string(),
        }
    }
}

/// A colour (or weight) for one piece of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Paint {
    #[default]
    None,
    Green,
    Red,
    Yellow,
    Cyan,
    Bold,
    Dim,
}

/// Green Succeeded, red Failed, yellow Canceled, cyan for anything still active.
pub fn state_paint(state: JobState) -> Paint {
    match state {
        JobState::Succeeded => Paint::Green,
        JobState::Failed => Paint::Red,
        JobState::Canceled => Paint::Yellow,
        _ => Paint::Cyan,
    }
}

pub fn phase_paint(phase: Option<Phase>) -> Paint {
    match phase {
        Some(Phase::Running) => Paint::Green,
        Some(Phase::Failed) => Paint::Red,
        Some(Phase::Canceled | Phase::Deleting) => Paint::Yellow,
        Some(Phase::Starting) => Paint::Cyan,
        Some(Phase::Unknown) | None => Paint::None,
    }
}

/// One table cell: its text and how to paint it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub paint: Paint,
}

impl Cell {
    pub fn painted(text: impl Into<String>, paint: Paint) -> Self {
        Self {
            text: text.into(),
            paint,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::painted(text, Paint::None)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::painted(text, Paint::None)
    }
}

/// kubectl's table layout: upper-case headers, columns three spaces apart, no trailing
/// blanks. Widths are measured on the plain text so colour never shifts a column.
pub fn table(header: &[&str], rows: &[Vec<Cell>], palette: Palette) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(width(&cell.text));
        }
    }
    let mut out = String::new();
    let header_cells: Vec<Cell> = header.iter().map(|h| Cell::from(*h)).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            let last = i + 1 == columns;
            line.push_str(&palette.paint(&cell.text, cell.paint));
            if !last {
                let pad = widths[i] - width(&cell.text) + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Cuts `text` to `max` characters, marking the cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// How long ago, the way kubectl's AGE column says it (`45s`, `5m`, `3h12m`, `4d`).
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs();
    if secs < 0 {
        // A clock a little ahead of ours; say "just now" rather than a negative age.
        return "0s".into();
    }
    human(secs)
}

/// Coarse human duration, precision dropping as it grows (kubectl's HumanDuration shape).
pub fn human(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

/// A job's run time, exact to the second (`42s`, `4m12s`, `2h3m`, `1d2h`).
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 60 {
        format!("{secs}s")
    } else if h < 1 {
        format!("{m}m{}s", secs % 60)
    } else if d < 1 {
        format!("{h}h{}m", m % 60)
    } else {
        format!("{d}d{}h", h % 24)
    }
}

/// RFC 3339 in whole seconds, as Kubernetes stores times.
pub fn timestamp(ts: Timestamp) -> String {
    cloudkit_shared::signals::whole_seconds(ts).to_string()
}

/// Pretty JSON and a final newline, like `kubectl -o json`.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Render(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// YAML through serde-saphyr.
pub fn yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    let mut text = serde_saphyr::to_string(value).map_err(|e| Error::Render(e.to_string()))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let rows = vec![
            vec![Cell::from("a"), Cell::from("long value"), Cell::from("x")],
            vec![Cell::from("bbbb"), Cell::from("v"), Cell::from("")],
        ];
        let golden = "\
NAME   VALUE        END
a      long value   x
bbbb   v
";
        assert_eq!(
            table(&["NAME", "VALUE", "END"], &rows, Palette::PLAIN),
            golden
        );
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let rows = vec![vec![
            Cell::painted("Failed", Paint::Red),
            Cell::from("next"),
        ]];
        let out = table(&["STATE", "X"], &rows, Palette::COLOUR);
        assert_eq!(
            out, "STATE    X\n\u{1b}[31mFailed\u{1b}[39m   next\n",
            "{out:?}"
        );
        let plain = table(&["STATE", "X"], &rows, Palette::PLAIN);
        assert!(!plain.contains('\u{1b}'));
    }

    #[test]
    fn palette_never_colours_when_plain() {
        for p in [
            Paint::Green,
            Paint::Red,
            Paint::Yellow,
            Paint::Cyan,
            Paint::Bold,
            Paint::Dim,
        ] {
            assert_eq!(Palette::PLAIN.paint("t", p), "t");
            assert_ne!(Palette::COLOUR.paint("t", p), "t");
        }
    }

    #[test]
    fn never_colour_is_plain_and_always_is_coloured() {
        use crate::cli::ColorChoice;
        assert!(!Palette::detect(owo_colors::Stream::Stdout, ColorChoice::Never).colour);
        assert!(Palette::detect(owo_colors::Stream::Stdout, ColorChoice::Always).colour);
        // `cargo test` captures stdout: not a terminal, so auto means no colour.
        assert!(!Palette::detect(owo_colors::Stream::Stdout, ColorChoice::Auto).colour);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = ts("2026-11-22T12:00:00Z");
        let cases = [
            ("2026-11-22T12:00:05Z", "0s"),
            ("2026-11-22T11:59:15Z", "45s"),
            ("2026-11-22T11:58:00Z", "2m"),
            ("2026-11-22T11:55:30Z", "4m30s"),
            ("2026-11-22T11:00:00Z", "60m"),
            ("2026-11-22T07:48:00Z", "4h12m"),
            ("2026-11-21T12:00:00Z", "24h"),
            ("2026-11-19T10:00:00Z", "3d2h"),
            ("2026-10-23T12:00:00Z", "30d"),
            ("2023-11-22T12:00:00Z", "3y1d"),
        ];
        for (then, want) in cases {
            assert_eq!(age(now, ts(then)), want, "{then}");
        }
    }

    #[test]
    fn durations_are_exact_to_the_second() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(252), "4m12s");
        assert_eq!(duration(7380), "2h3m");
        assert_eq!(duration(93_600), "1d2h");
        assert_eq!(duration(-3), "0s");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn timestamps_are_whole_seconds() {
        assert_eq!(
            timestamp(ts("2026-11-22T12:00:00.75Z")),
            "2026-11-22T12:00:00Z"
        );
    }

    #[test]
    fn state_colours() {
        assert_eq!(state_paint(JobState::Succeeded), Paint::Green);
        assert_eq!(state_paint(JobState::Failed), Paint::Red);
        assert_eq!(state_paint(JobState::Canceled), Paint::Yellow);
        for s in [
            JobState::Pending,
            JobState::Waiting,
            JobState::Running,
            JobState::Unknown,
        ] {
            assert_eq!(state_paint(s), Paint::Cyan);
        }
    }
}
