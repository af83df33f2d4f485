//! AAP controller REST API provider: find templates by name, launch by id, find a
//! launch lost in a crash, poll many jobs with one request, cancel once.

mod answer;
mod client;
#[cfg(test)]
mod client_tests;
mod config;
mod error;
mod failure;
mod request;
mod token;
mod types;
pub(crate) mod ui_url;

pub use crate::secret::Secret;
pub use client::{AapClient, TemplateRef};
pub(crate) use config::DEFAULT_MAX_CONCURRENT_REQUESTS;
pub use config::{AapConfig, RetryPolicy};
pub use error::AapError;
pub use token::TokenSource;
pub use types::{AapJob, AapJobKind, CancelOutcome, Launched, job_state};
