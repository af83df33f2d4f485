//! Where text goes: data to stdout, progress to stdout (or stderr when stdout carries
//! json / yaml, so `| jq` sees only the object), each stream with its own colour decision.

use std::io::Write;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::error::Error;
use crate::render::Palette;

pub struct Output {
    pub format: OutputFormat,
    /// Colour for what goes to stdout.
    pub palette: Palette,
    /// Colour for what goes to stderr.
    pub err_palette: Palette,
    /// stdout is a terminal (redraws may clear the screen).
    pub terminal: bool,
}

impl Output {
    pub fn new(args: &GlobalArgs) -> Self {
        Self {
            format: args.output,
            palette: Palette::detect(owo_colors::Stream::Stdout, args.color),
            err_palette: Palette::detect(owo_colors::Stream::Stderr, args.color),
            terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }

    /// Writes `text` to stdout as is.
    pub fn data(&self, text: &str) -> Result<(), Error> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    /// A progress or status line for people.
    pub fn note(&self, line: &str) -> Result<(), Error> {
        if self.format.is_data() {
            let mut stderr = std::io::stderr().lock();
            writeln!(stderr, "{line}")?;
            Ok(())
        } else {
            self.data(&format!("{line}\n"))
        }
    }

    /// The palette for [`Output::note`] lines.
    pub fn note_palette(&self) -> Palette {
        if self.format.is_data() {
            self.err_palette
        } else {
            self.palette
        }
    }
}
