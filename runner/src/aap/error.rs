//! What can go wrong talking to AAP, as one line a person can act on.
//!
//! Messages name the template, job or URL involved and never the token: the token only
//! ever lives in [`crate::secret::Secret`] and in the `Authorization` header.

use std::path::PathBuf;
use std::time::Duration;

use cloudkit_shared::reasons;

use super::types::Launched;

#[derive(Debug, thiserror::Error)]
pub enum AapError {
    #[error("AAP rejected the token (401): {detail}")]
    Unauthorized { detail: String },

    #[error("not allowed to {action} (403): {detail}")]
    Forbidden { action: String, detail: String },

    #[error("no job or workflow template named {name:?}{}", in_org(organization.as_deref()))]
    TemplateNotFound {
        name: String,
        organization: Option<String>,
    },

    /// Names are unique only within an organization.
    #[error(
        "{count} templates are named {name:?} (organizations: {}); set the AAP organization",
        organizations.join(", ")
    )]
    AmbiguousTemplate {
        name: String,
        count: u64,
        organizations: Vec<String>,
    },

    #[error(
        "AAP refused to launch template {template:?} (400): {}",
        fields_line(fields)
    )]
    LaunchRejected {
        template: String,
        fields: Vec<(String, Vec<String>)>,
    },

    /// The job exists and runs, but without our variables: the caller should cancel it.
    #[error(
        "template {template:?} ignored {} on launch (enable \"Prompt on launch\" for them); {} {} was started without them",
        fields.join(", "), job.kind, job.id
    )]
    VariablesIgnored {
        template: String,
        fields: Vec<String>,
        job: Launched,
    },

    #[error("AAP is rate limiting requests to {url} (429){}", retry_line(*retry_after))]
    RateLimited {
        url: String,
        retry_after: Option<Duration>,
    },

    #[error("AAP answered {status} for {url}: {body_excerpt}")]
    Server {
        status: u16,
        url: String,
        body_excerpt: String,
    },

    /// A status this client does not expect for the request (a 404 on a list: a wrong
    /// base URL; a redirect: a missing path prefix).
    #[error("unexpected answer {status} from {url}: {body_excerpt}")]
    Unexpected {
        status: u16,
        url: String,
        body_excerpt: String,
    },

    #[error("no answer from AAP at {url} in time")]
    Timeout { url: String },

    #[error("cannot connect to AAP at {url}: {cause}")]
    Connect { url: String, cause: String },

    #[error("unreadable answer from {url}: {cause}")]
    Decode { url: String, cause: String },

    #[error("TLS with AAP at {url} failed: {cause}")]
    Tls { url: String, cause: String },

    #[error("cannot read the AAP token from {}: {cause}", path.display())]
    Token { path: PathBuf, cause: String },

    #[error("invalid AAP configuration: {0}")]
    Config(String),
}

impl AapError {
    /// The condition / Event reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } | Self::Token { .. } => reasons::AUTH_REJECTED,
            Self::Forbidden { .. } => reasons::FORBIDDEN,
            Self::TemplateNotFound { .. } | Self::AmbiguousTemplate { .. } => {
                reasons::TEMPLATE_NOT_FOUND
            }
            Self::LaunchRejected { .. } => reasons::LAUNCH_REJECTED,
            Self::VariablesIgnored { .. } => reasons::VARIABLES_IGNORED,
            Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::Unexpected { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Decode { .. }
            | Self::Tls { .. }
            | Self::Config(_) => reasons::PROVIDER_UNREACHABLE,
        }
    }

    /// True when trying again unchanged cannot help: a person must fix the token, the
    /// permissions, the template or the configuration first.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::TemplateNotFound { .. }
            | Self::AmbiguousTemplate { .. }
            | Self::LaunchRejected { .. }
            | Self::VariablesIgnored { .. }
            | Self::Tls { .. }
            | Self::Config(_) => true,
            Self::Unexpected { status, .. } => (400..500).contains(status) && *status != 408,
            // A mounted Secret may be mid-update; a gateway may be restarting.
            Self::Token { .. }
            | Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Decode { .. } => false,
        }
    }

    /// How long AAP asked us to wait (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Transport failures and overload answers, which a GET may simply repeat.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Timeout { .. } | Self::Connect { .. }
        )
    }
}

fn in_org(organization: Option<&str>) -> String {
    organization
        .map(|o| format!(" in organization {o:?}"))
        .unwrap_or_default()
}

fn fields_line(fields: &[(String, Vec<String>)]) -> String {
    if fields.is_empty() {
        return "no reason given".to_owned();
    }
    fields
        .iter()
        // AWX's messages may span lines (YAML parse errors); errors are read in one line.
        .map(|(field, messages)| {
            let text = messages.join(" ");
            format!(
                "{field}: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn retry_line(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!("; retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aap::AapJobKind;

    #[test]
    fn messages_are_one_line_and_name_the_template() {
        let e = AapError::LaunchRejected {
            template: "cloudkit provision".into(),
            fields: vec![
                (
                    "extra_vars".into(),
                    vec!["Variables foo are not allowed.".into()],
                ),
                (
                    "variables_needed_to_start".into(),
                    vec!["'size' value missing".into()],
                ),
            ],
        };
        assert_eq!(
            e.to_string(),
            "AAP refused to launch template \"cloudkit provision\" (400): extra_vars: \
             Variables foo are not allowed.; variables_needed_to_start: 'size' value missing"
        );
        assert_eq!(e.reason(), reasons::LAUNCH_REJECTED);
        assert!(e.is_permanent());

        let e = AapError::VariablesIgnored {
            template: "t".into(),
            fields: vec!["extra_vars".into()],
            job: Launched {
                id: 12,
                kind: AapJobKind::Job,
            },
        };
        assert!(e.to_string().contains("ignored extra_vars"));
        assert!(e.to_string().contains("job 12"));
        assert_eq!(e.reason(), reasons::VARIABLES_IGNORED);

        let e = AapError::TemplateNotFound {
            name: "x y".into(),
            organization: Some("Default".into()),
        };
        assert_eq!(
            e.to_string(),
            "no job or workflow template named \"x y\" in organization \"Default\""
        );
    }

    #[test]
    fn transient_and_permanent() {
        let rate = AapError::RateLimited {
            url: "u".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(!rate.is_permanent());
        assert_eq!(rate.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(rate.reason(), reasons::PROVIDER_UNREACHABLE);
        assert!(rate.to_string().ends_with("retry after 3s"));
        assert!(!AapError::Timeout { url: "u".into() }.is_permanent());
        let server = AapError::Server {
            status: 502,
            url: "u".into(),
            body_excerpt: String::new(),
        };
        assert!(!server.is_permanent());
        assert!(server.is_retryable());
        let unauthorized = AapError::Unauthorized {
            detail: "Invalid token.".into(),
        };
        assert!(unauthorized.is_permanent());
        assert_eq!(unauthorized.reason(), reasons::AUTH_REJECTED);
        assert_eq!(
            unauthorized.to_string(),
            "AAP rejected the token (401): Invalid token."
        );
        let forbidden = AapError::Forbidden {
            action: "launch template \"t\"".into(),
            detail: "You do not have permission to perform this action.".into(),
        };
        assert!(
            forbidden
                .to_string()
                .starts_with("not allowed to launch template \"t\" (403)")
        );
        assert_eq!(forbidden.reason(), reasons::FORBIDDEN);
    }
}
