//! Bad input to every parser gives a typed error a person can act on.

use cloudkit_shared::ComputeInstanceSpec;
use cloudkit_shared::config_version::{
    desired_config_version, fnv1a64, matches_current, upstream_config_version,
};
use cloudkit_shared::settings::{parse_max_job_history, validate_template_id};
use cloudkit_shared::signals::{Signal, parse_duration_secs, parse_timestamp, signal};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

#[test]
fn history_limit_defaults_and_warns() {
    assert_eq!(parse_max_job_history(None).limit, 10);
    assert_eq!(parse_max_job_history(Some("25")).limit, 25);
    assert!(parse_max_job_history(Some("25")).warning.is_none());
    for bad in ["0", "-3", "ten", "1.5"] {
        let h = parse_max_job_history(Some(bad));
        assert_eq!(h.limit, 10, "{bad}");
        let w = h.warning.expect("a warning");
        assert!(
            w.contains("CLOUDKIT_MAX_JOB_HISTORY") && w.contains(bad),
            "{w}"
        );
    }
}

#[test]
fn template_ids() {
    for ok in ["vm_small", "_x", "osac.templates.ocp_4_17_small", "A1"] {
        assert!(validate_template_id(ok).is_ok(), "{ok}");
    }
    for bad in ["", "9bad", "has-dash", "a b", "x/y", "é"] {
        let e = validate_template_id(bad).unwrap_err();
        assert!(e.to_string().contains("templateID"), "{e}");
    }
}

#[test]
fn timestamps_and_durations() {
    assert!(parse_timestamp("2026-11-22T10:00:00Z").is_ok());
    assert!(parse_timestamp("2026-11-22T10:00:00+02:00").is_ok());
    let e = parse_timestamp("tomorrow").unwrap_err().to_string();
    assert!(e.contains("tomorrow") && e.contains("RFC 3339"), "{e}");
    assert_eq!(parse_duration_secs("90s"), Ok(90));
    assert_eq!(parse_duration_secs("2h30m"), Ok(9000));
    assert_eq!(parse_duration_secs("1d"), Ok(86400));
    assert_eq!(
        cloudkit_shared::signals::parse_duration("1s500ms"),
        Ok(std::time::Duration::from_millis(1500))
    );
    assert!(parse_duration_secs("500ms").is_err(), "whole seconds only");
    // Go's time.ParseDuration syntax, as the upstream operator's settings use it.
    let go = |s: &str| cloudkit_shared::signals::parse_duration(s).map(|d| d.as_nanos());
    assert_eq!(go("1m30s"), Ok(90_000_000_000));
    assert_eq!(go("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(go("500ms"), Ok(500_000_000));
    assert_eq!(go("+2.25s"), Ok(2_250_000_000));
    assert_eq!(go("300us"), Ok(300_000));
    assert_eq!(go("1µs1ns"), Ok(1_001));
    assert_eq!(go(".5s"), Ok(500_000_000));
    for bad in ["1.5", ".s", "1..5s", "1h-5m", "0", "0s", "1e3s"] {
        assert!(go(bad).is_err(), "{bad}");
    }
    for bad in ["", "10", "0s", "5x", "m", "-5m", "99999999999999999999d"] {
        let e = parse_duration_secs(bad).unwrap_err().to_string();
        assert!(e.contains("duration"), "{bad}: {e}");
    }
}

#[test]
fn signals_past_done_scheduled_due() {
    let t = |s: &str| parse_timestamp(s).unwrap();
    let now = t("2026-11-22T10:00:00Z");
    assert_eq!(signal(None, None, now), Signal::Absent);
    let past = t("2026-11-22T09:00:00Z");
    assert_eq!(signal(Some(past), Some(past), now), Signal::Done);
    assert_eq!(signal(Some(past), Some(now), now), Signal::Done);
    assert_eq!(signal(Some(past), None, now), Signal::Due(past));
    assert_eq!(signal(Some(now), Some(past), now), Signal::Due(now));
    // An acknowledgement stored in whole seconds still covers a request with a fraction.
    let fraction = t("2026-11-22T09:00:00.634Z");
    assert_eq!(signal(Some(fraction), Some(past), now), Signal::Done);
    assert_eq!(signal(Some(fraction), None, now), Signal::Due(past));
    let future = t("2026-11-22T11:00:00Z");
    assert_eq!(
        signal(Some(future), Some(past), now),
        Signal::Scheduled(future)
    );
}

#[test]
fn config_version_ignores_signals_and_policy() {
    // Known FNV-1a 64 vectors.
    assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
    assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    let spec = ComputeInstanceSpec {
        template_id: "vm_small".into(),
        ..Default::default()
    };
    let v = desired_config_version(&spec);
    assert_eq!(v.len(), 16);
    let mut signalled = spec.clone();
    signalled.restart_requested_at = Some(Time(parse_timestamp("2026-11-22T10:00:00Z").unwrap()));
    signalled.cancel_requested_at = signalled.restart_requested_at.clone();
    signalled.provision_requested_at = signalled.restart_requested_at.clone();
    signalled.deprovision_failure_policy = Some(cloudkit_shared::DeprovisionFailurePolicy::Proceed);
    assert_eq!(desired_config_version(&signalled), v);
    let mut changed = spec.clone();
    changed.template_parameters = Some(r#"{"cpus": 4}"#.into());
    assert_ne!(desired_config_version(&changed), v);
}

/// Values printed by Go's `json.Marshal` + `hash/fnv` + `hex.EncodeToString` over the upstream
/// operator's spec struct (computed once with go1.26 and pinned here).
#[test]
fn config_versions_match_the_upstream_operator() {
    let spec = |id: &str, params: Option<&str>, restart: Option<&str>| ComputeInstanceSpec {
        template_id: id.into(),
        template_parameters: params.map(str::to_string),
        restart_requested_at: restart.map(|t| Time(parse_timestamp(t).unwrap())),
        ..Default::default()
    };
    assert_eq!(
        desired_config_version(&spec("vm_small", None, None)),
        "16802b270a7a2e03"
    );
    // HTML characters, line separators, control characters, quotes and backslashes;
    // also a hash with leading zero nibbles.
    let tricky = "{\"cpu_cores\": 2, \"note\": \"<a & b>\", \"u\": \"é\u{2028}\u{2029}\t\u{8}\u{c}\u{1}\n\r\\\\\\\"\"}";
    assert_eq!(
        desired_config_version(&spec("vm_small", Some(tricky), None)),
        "0058d45a2aa819ba"
    );
    let restarted = spec(
        "vm_small",
        Some(r#"{"cpu_cores": 2}"#),
        Some("2026-11-22T10:00:00.75+01:00"),
    );
    assert_eq!(upstream_config_version(&restarted), "292de9a29edc98e5");
    // cloudkit's own version leaves the restart out; both count as provisioned.
    let plain = desired_config_version(&restarted);
    assert_ne!(plain, "292de9a29edc98e5");
    assert!(matches_current(Some("292de9a29edc98e5"), &restarted));
    assert!(matches_current(Some(&plain), &restarted));
    assert!(!matches_current(Some("16802b270a7a2e03"), &restarted));
    assert!(!matches_current(None, &restarted));
    assert_eq!(
        desired_config_version(&spec("", Some("{}"), None)),
        "1a8630173361d6f1"
    );
}
