//! How much a logs request may return and for how long.

use std::time::Duration;

/// Most output one answer carries (the newest part is kept: a failure is at the end).
pub const MAX_BYTES: usize = 1024 * 1024;

/// Longest `--follow`; the stream then ends with a line saying so.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How often `--follow` asks AAP for new output.
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// The last `lines` lines of `text` (all of it for `None`), then at most [`MAX_BYTES`]
/// of their end, cut at a line start, with a first line saying what was left out.
pub fn tail(text: &str, lines: Option<usize>) -> String {
    let mut start = 0;
    if let Some(n) = lines {
        let body = text.strip_suffix('\n').unwrap_or(text);
        start = match n {
            0 => text.len(),
            n => body
                .rmatch_indices('\n')
                .nth(n - 1)
                .map_or(0, |(i, _)| i + 1),
        };
    }
    let kept = &text[start..];
    if kept.len() <= MAX_BYTES {
        return kept.to_string();
    }
    let mut cut = kept.len() - MAX_BYTES;
    while !kept.is_char_boundary(cut) {
        cut += 1;
    }
    let from = kept[cut..].find('\n').map_or(cut, |i| cut + i + 1);
    format!(
        "[cloudkit: {} earlier bytes left out; the answer is capped at 1 MiB]\n{}",
        start + from,
        &kept[from..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(tail("a\nb\nc", Some(2)), "b\nc");
        assert_eq!(tail("a\nb\n", Some(5)), "a\nb\n");
        assert_eq!(tail("a\nb\n", Some(0)), "");
        assert_eq!(tail("a\nb\n", None), "a\nb\n");
    }

    #[test]
    fn large_output_is_capped_at_a_line_start() {
        let line = "x".repeat(99) + "\n";
        let text = line.repeat(20_000);
        let out = tail(&text, None);
        assert!(out.len() <= MAX_BYTES + 100, "{}", out.len());
        let mut lines = out.lines();
        assert!(lines.next().unwrap().contains("earlier bytes left out"));
        assert!(lines.all(|l| l.len() == 99));
    }
}
