//! Configuration checks without a process: flags parsed by [`super::parse_from`], then
//! validated. The process-level contract (exit 2, one stderr line) is in the test bed's
//! `bad_input` test.

use std::time::Duration;

use cloudkit_shared::plan::ProviderKind;

use super::{ParseError, Settings, parse_from};

/// A configuration that passes validation, as flags.
fn valid() -> Vec<(&'static str, &'static str)> {
    vec![
        ("--provider", "aap"),
        ("--aap-url", "https://aap.example.com/api/controller"),
        ("--aap-token", "t"),
        ("--aap-provision-template", "cloudkit-create"),
        ("--aap-deprovision-template", "cloudkit-delete"),
    ]
}

fn eda() -> Vec<(&'static str, &'static str)> {
    vec![
        ("--provision-webhook", "http://eda/p"),
        ("--deprovision-webhook", "http://eda/d"),
    ]
}

fn without(
    flags: &[(&'static str, &'static str)],
    gone: &str,
) -> Vec<(&'static str, &'static str)> {
    flags.iter().copied().filter(|(f, _)| *f != gone).collect()
}

fn with(
    flags: &[(&'static str, &'static str)],
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = flags
        .iter()
        .copied()
        .filter(|(f, _)| !extra.iter().any(|(e, _)| e == f))
        .collect();
    all.extend_from_slice(extra);
    all
}

fn settings(flags: &[(&str, &str)]) -> Result<Settings, String> {
    let argv = std::iter::once("cloudkit-runner".to_string())
        .chain(flags.iter().map(|(f, v)| format!("{f}={v}")));
    let args = parse_from(argv).map_err(|e| match e {
        ParseError::Display(e) => panic!("unexpected help: {e}"),
        ParseError::Invalid(line) => line,
    })?;
    args.settings().map_err(|e| e.to_string())
}

/// The message is one line and names `variable`.
fn fails_naming(flags: &[(&str, &str)], variable: &str) -> String {
    let case = format!("{flags:?}");
    let message = match settings(flags) {
        Ok(_) => panic!("{case}: accepted"),
        Err(m) => m,
    };
    assert!(!message.contains('\n'), "{case}: not one line: {message}");
    assert!(
        message.contains(variable),
        "{case}: does not name {variable}: {message}"
    );
    message
}

#[test]
fn a_valid_configuration_has_its_values() {
    let s = settings(&valid()).expect("valid");
    assert_eq!(s.policy.provider, ProviderKind::Aap);
    assert_eq!(s.policy.retry_base, Duration::from_secs(10));
    assert_eq!(s.policy.retry_max, Duration::from_secs(600));
    assert_eq!(s.http_timeout, Duration::from_secs(30));
    assert_eq!(s.metrics_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(
        s.logs_addr.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:8443")
    );
    let off = settings(&with(&valid(), &[("--logs-addr", "off")])).expect("off");
    assert_eq!(off.logs_addr, None);
    assert_eq!(s.leader.as_ref().map(|l| l.duration_secs), Some(15));
    let aap = s.aap.expect("aap settings");
    assert_eq!(aap.provision_template, "cloudkit-create");
    assert!(s.eda.is_none());
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn each_bad_value_is_one_line_naming_its_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("--provider", "awx", "CLOUDKIT_PROVISIONING_PROVIDER"),
        ("--aap-url", "aap.example.com", "CLOUDKIT_AAP_URL"),
        ("--aap-url", "ftp://aap.example.com/api", "CLOUDKIT_AAP_URL"),
        ("--aap-url", "https://", "CLOUDKIT_AAP_URL"),
        ("--retry-base", "-1s", "CLOUDKIT_RETRY_BASE"),
        ("--retry-max", "ten minutes", "CLOUDKIT_RETRY_MAX"),
        ("--cancel-deadline", "2 m", "CLOUDKIT_CANCEL_DEADLINE"),
        ("--restart-deadline", "5mins", "CLOUDKIT_RESTART_DEADLINE"),
        ("--eda-deadline", "forever", "CLOUDKIT_EDA_DEADLINE"),
        ("--http-timeout", "1.5", "CLOUDKIT_HTTP_TIMEOUT"),
        ("--lease-duration", "1s", "CLOUDKIT_LEASE_DURATION"),
        ("--metrics-addr", "localhost:8080", "CLOUDKIT_METRICS_ADDR"),
        ("--metrics-addr", "8080", "CLOUDKIT_METRICS_ADDR"),
        ("--metrics-addr", "0.0.0.0:http", "CLOUDKIT_METRICS_ADDR"),
        ("--logs-addr", "localhost:8443", "CLOUDKIT_LOGS_ADDR"),
        (
            "--aap-provision-template",
            "   ",
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        ),
        (
            "--aap-ui-job-url",
            "https://aap/jobs",
            "CLOUDKIT_AAP_UI_JOB_URL",
        ),
        (
            "--deprovision-attempts",
            "0",
            "CLOUDKIT_DEPROVISION_ATTEMPTS",
        ),
        (
            "--max-concurrent-reconciles",
            "0",
            "CLOUDKIT_MAX_CONCURRENT_RECONCILES",
        ),
    ];
    for (flag, value, variable) in cases {
        fails_naming(&with(&valid(), &[(flag, value)]), variable);
    }
    let eda_cases: &[(&str, &str, &str)] = &[
        (
            "--provision-webhook",
            "eda.example.com/provision",
            "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
        ),
        ("--eda-hmac-format", "binary", "CLOUDKIT_EDA_HMAC_FORMAT"),
        (
            "--eda-hmac-header",
            "X Signature",
            "CLOUDKIT_EDA_HMAC_HEADER",
        ),
    ];
    for (flag, value, variable) in eda_cases {
        fails_naming(&with(&with(&valid(), &eda()), &[(flag, value)]), variable);
    }
}

#[test]
fn a_bad_choice_lists_the_good_ones_and_a_url_is_never_repeated() {
    let m = fails_naming(
        &with(&valid(), &[("--provider", "awx")]),
        "CLOUDKIT_PROVISIONING_PROVIDER",
    );
    assert!(m.contains("aap") && m.contains("eda"), "{m}");
    let m = fails_naming(
        &with(
            &with(&valid(), &eda()),
            &[("--provision-webhook", "ftp://user:hunter2@eda/p")],
        ),
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
    );
    assert!(!m.contains("hunter2"), "{m}");
}

#[test]
fn a_retry_max_below_the_base_names_both() {
    let m = fails_naming(
        &with(&valid(), &[("--retry-base", "1m"), ("--retry-max", "10s")]),
        "CLOUDKIT_RETRY_MAX",
    );
    assert!(m.contains("CLOUDKIT_RETRY_BASE"), "{m}");
}

#[test]
fn each_missing_setting_is_named() {
    for (flag, variable) in [
        ("--aap-url", "CLOUDKIT_AAP_URL"),
        ("--aap-token", "CLOUDKIT_AAP_TOKEN"),
        (
            "--aap-provision-template",
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        ),
        (
            "--aap-deprovision-template",
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
        ),
    ] {
        fails_naming(&without(&valid(), flag), variable);
    }
    let eda_only = [("--provider", "eda")];
    fails_naming(&eda_only, "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK");
    fails_naming(
        &with(&eda_only, &[("--provision-webhook", "http://eda/p")]),
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
    );
}

/// Every value the upstream operator accepted keeps its meaning.
#[test]
fn upstream_settings_keep_their_meaning() {
    for (value, expected) in [
        ("1m30s", Duration::from_secs(90)),
        ("500ms", Duration::from_millis(500)),
        ("1.5h", Duration::from_secs(5400)),
    ] {
        let s = settings(&with(&valid(), &[("--poll-interval", value)])).expect(value);
        assert_eq!(s.policy.poll_interval, expected, "{value}");
        assert!(s.warnings.is_empty(), "{value}: {:?}", s.warnings);
    }
    for value in ["30", "0s", "-5s", "soon"] {
        let s = settings(&with(&valid(), &[("--poll-interval", value)])).expect(value);
        assert_eq!(s.policy.poll_interval, Duration::from_secs(30), "{value}");
        assert!(
            s.warnings.iter().any(|w| w.contains("CLOUDKIT_AAP_STATUS_POLL_INTERVAL") && w.contains("using 30s")),
            "{value}: {:?}",
            s.warnings
        );
    }
    // The provider, case-insensitive or inferred from what is set.
    let upper = settings(&with(&valid(), &[("--provider", "AAP")])).expect("AAP");
    assert_eq!(upper.policy.provider, ProviderKind::Aap);
    let inferred_aap = settings(&without(&valid(), "--provider")).expect("inferred aap");
    assert_eq!(inferred_aap.policy.provider, ProviderKind::Aap);
    let inferred_eda = settings(&eda()).expect("inferred eda");
    assert_eq!(inferred_eda.policy.provider, ProviderKind::Eda);
    fails_naming(
        &with(&without(&valid(), "--provider"), &eda()),
        "CLOUDKIT_PROVISIONING_PROVIDER",
    );
    fails_naming(&[], "CLOUDKIT_PROVISIONING_PROVIDER");
}

#[test]
fn eda_settings_carry_their_secrets_hidden() {
    let s = settings(&with(
        &eda(),
        &[
            ("--eda-token", "tok-123"),
            ("--eda-hmac-secret", "hm-456"),
            ("--eda-hmac-format", "BASE64"),
        ],
    ))
    .expect("eda");
    let eda = s.eda.expect("eda settings");
    assert!(eda.hmac.base64);
    assert_eq!(eda.token.as_ref().map(|t| t.expose()), Some("tok-123"));
    let shown = format!("{eda:?}");
    assert!(
        !shown.contains("tok-123") && !shown.contains("hm-456"),
        "{shown}"
    );
}

#[test]
fn the_lease_namespace_falls_back_in_order() {
    let ns = |flags: &[(&'static str, &'static str)]| {
        settings(&with(&valid(), flags))
            .expect("valid")
            .leader
            .expect("leader")
            .namespace
    };
    assert_eq!(ns(&[]), "default");
    assert_eq!(ns(&[("--namespace", "watched")]), "watched");
    assert_eq!(
        ns(&[("--namespace", "watched"), ("--pod-namespace", "pod")]),
        "pod"
    );
    assert_eq!(
        ns(&[("--pod-namespace", "pod"), ("--lease-namespace", "lease")]),
        "lease"
    );
    let id = settings(&with(&valid(), &[("--pod-name", "runner-0")]))
        .expect("valid")
        .leader
        .expect("leader")
        .identity;
    assert_eq!(id, "runner-0");
}
