//! Parsing of settings whose rules both binaries share.

/// Default and fallback of `CLOUDKIT_MAX_JOB_HISTORY`.
pub const DEFAULT_MAX_JOB_HISTORY: usize = 10;

/// The job history limit and, when the input was unusable, a warning for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryLimit {
    pub limit: usize,
    pub warning: Option<String>,
}

/// Parses `CLOUDKIT_MAX_JOB_HISTORY`: absent → 10; invalid or < 1 → 10 with a warning.
pub fn parse_max_job_history(raw: Option<&str>) -> HistoryLimit {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return HistoryLimit {
            limit: DEFAULT_MAX_JOB_HISTORY,
            warning: None,
        };
    };
    match raw.parse::<usize>() {
        Ok(n) if n >= 1 => HistoryLimit {
            limit: n,
            warning: None,
        },
        _ => HistoryLimit {
            limit: DEFAULT_MAX_JOB_HISTORY,
            warning: Some(format!(
                "CLOUDKIT_MAX_JOB_HISTORY={raw:?} is not a whole number >= 1; using {DEFAULT_MAX_JOB_HISTORY}"
            )),
        },
    }
}

/// Why a template id is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid templateID {input:?}: it must start with a letter or '_' and contain only letters, digits, '.' and '_'"
)]
pub struct TemplateIdError {
    pub input: String,
}

/// Checks a template id against `^[a-zA-Z_][a-zA-Z0-9._]*$` (the CRD's pattern).
pub fn validate_template_id(input: &str) -> Result<(), TemplateIdError> {
    let mut chars = input.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
        Ok(())
    } else {
        Err(TemplateIdError {
            input: input.to_string(),
        })
    }
}
