//! Text from Ansible made readable in one place: colour and cursor escapes out.

/// Drops ANSI escape sequences, as AWX does for `format=txt`: a CSI sequence (`ESC [`,
/// parameters and intermediates, one final byte in `@..~`) and any other two-character
/// escape (`ESC 7`, ...).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_and_cursor_moves_go() {
        assert_eq!(
            super::strip_ansi("\u{1b}[0;32mok: [localhost]\u{1b}[0m\u{1b}[2K\u{1b}7"),
            "ok: [localhost]"
        );
        assert_eq!(super::strip_ansi("plain"), "plain");
    }
}
