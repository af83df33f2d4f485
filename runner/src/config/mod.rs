//! Configuration, as ripgrep's `flags/`: typed low-level arguments (`args.rs`, one
//! definition per variable) become validated settings (`settings.rs`).

mod args;
mod settings;
#[cfg(test)]
mod tests;

pub use args::Args;
pub(crate) use settings::LeaderSettings;
pub use settings::{AapSettings, EdaSettings, HmacStyle, Settings};

/// One bad setting, named with its variable and flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses flags and environment; a bad value is one line that names its variable.
/// `--help` and `--version` print and exit as usual.
pub fn parse_args() -> Result<Args, String> {
    parse_from(std::env::args_os()).map_err(|e| match e {
        ParseError::Display(e) => e.exit(),
        ParseError::Invalid(line) => line,
    })
}

pub(crate) enum ParseError {
    /// `--help` or `--version`: print it and exit.
    Display(clap::Error),
    /// A bad value: one line naming its variable.
    Invalid(String),
}

/// [`parse_args`] over the given arguments (and the environment).
pub(crate) fn parse_from<I, T>(argv: I) -> Result<Args, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::{CommandFactory, FromArgMatches};
    // Go's os.Getenv makes an empty variable the same as an unset one, and manifests written
    // for the upstream operator rely on it; clap would take it as an empty value.
    let command = Args::command().mut_args(|a| match a.get_env() {
        Some(var) if std::env::var_os(var).is_some_and(|v| v.is_empty()) => a.env(None),
        _ => a,
    });
    let parsed = command
        .try_get_matches_from(argv)
        .and_then(|m| Args::from_arg_matches(&m));
    let e = match parsed {
        Ok(args) => return Ok(args),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return Err(ParseError::Display(e));
        }
        Err(e) => e,
    };
    let mut line = e
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        line.push_str(&format!(": use one of {}", valid.join(", ")));
    }
    // clap names the flag as `--name <NAME>`; name its variable too.
    let long = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => flag
            .trim_start_matches("--")
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    Err(ParseError::Invalid(if long.is_empty() {
        format!("{line} (see cloudkit-runner --help)")
    } else {
        format!("{}: {line}", args::name(&long))
    }))
}
