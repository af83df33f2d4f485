//! Bad input: what the real API server refuses in a ComputeInstance, what the
//! runner says about a bad setting at start-up, and what the plugin says about bad
//! arguments — one line, a non-zero exit, no panic.
//!
//! | Input                                        | Where              | What happens                                   |
//! |----------------------------------------------|--------------------|------------------------------------------------|
//! | `spec.templateID` not `^[a-zA-Z_][a-zA-Z0-9._]*$`, or missing | API server | 422 Invalid naming `spec.templateID`       |
//! | a signal (`restart/cancel/provisionRequestedAt`) not RFC 3339 | API server | 422 Invalid naming the field (`date-time`) |
//! | an unknown spec field                         | API server         | default: accepted and pruned; `fieldValidation=Strict`: 400 naming it |
//! | `spec.deprovisionFailurePolicy` not Block/Proceed | API server     | 422 Unsupported value, listing both            |
//! | a bad `CLOUDKIT_*` value                      | runner start-up    | exit 2, one line naming the variable           |
//! | `CLOUDKIT_MAX_JOB_HISTORY` not a number       | runner start-up    | a warning; 10 is used (not fatal)              |
//! | bad `--at` / `--in` / `--timeout`, unknown verb, missing NAME | plugin | exit 2, one line naming the argument     |

use std::path::Path;
use std::process::{Command, Output};

use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec};
use cloudkit_testbed::control_plane::ControlPlane;
use cloudkit_testbed::runner_process::{runner_binary, workspace_binary};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

// ---- the API server ----------------------------------------------------------------------

struct Server {
    client: kube::Client,
    namespace: String,
}

impl Server {
    async fn new(prefix: &str) -> anyhow::Result<Self> {
        let cp = ControlPlane::shared().await?;
        Ok(Self {
            client: cp.client().await?,
            namespace: cp.test_namespace(prefix).await?,
        })
    }

    fn dynamic(&self) -> Api<DynamicObject> {
        let ar = ApiResource::erase::<ComputeInstance>(&());
        Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
    }

    fn typed(&self) -> Api<ComputeInstance> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// POSTs `{metadata: {name}, spec}` as it is, without typed serialization in between.
    async fn create(&self, name: &str, spec: Value) -> Result<DynamicObject, kube::Error> {
        let ar = ApiResource::erase::<ComputeInstance>(&());
        let mut obj = DynamicObject::new(name, &ar).within(&self.namespace);
        obj.data = json!({ "spec": spec });
        self.dynamic().create(&PostParams::default(), &obj).await
    }

    /// The same with `?fieldValidation=Strict`, which `PostParams` cannot ask for.
    async fn create_strict(&self, name: &str, spec: Value) -> Result<Value, kube::Error> {
        let body = json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1",
            "kind": "ComputeInstance",
            "metadata": { "name": name },
            "spec": spec,
        });
        let request = http::Request::post(format!(
            "/apis/cloudkit.openshift.io/v1alpha1/namespaces/{}/computeinstances?fieldValidation=Strict",
            self.namespace
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("JSON"))
        .expect("a request");
        self.client.request::<Value>(request).await
    }
}

/// The API server's answer to a refused request: (code, reason, message).
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String, String) {
    let answer = match result {
        Err(kube::Error::Api(status)) => {
            (status.code, status.reason.clone(), status.message.clone())
        }
        other => panic!("expected the API server to refuse it, got {other:?}"),
    };
    eprintln!("refused: {} {} {}", answer.0, answer.1, answer.2);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_id_must_match_the_pattern() -> anyhow::Result<()> {
    let server = Server::new("bad-template").await?;
    for (i, bad) in ["", "1st", "has space", "dash-ed", "a/b", "ünïcode", "x;rm"]
        .into_iter()
        .enumerate()
    {
        let (code, reason, message) = refusal(
            server
                .create(&format!("bad-{i}"), json!({ "templateID": bad }))
                .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (422, "Invalid"),
            "{bad:?}: {message}"
        );
        assert!(message.contains("spec.templateID"), "{bad:?}: {message}");
    }
    let (code, _, message) = refusal(server.create("missing", json!({})).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.templateID: Required"), "{message}");
    for (i, good) in ["osac.templates.ocp_small", "_x", "A1.b_c"]
        .into_iter()
        .enumerate()
    {
        server
            .create(&format!("good-{i}"), json!({ "templateID": good }))
            .await
            .unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_timestamps_must_be_rfc3339() -> anyhow::Result<()> {
    let server = Server::new("bad-time").await?;
    let bad_values = [
        json!("tomorrow"),
        json!("2026-13-01T00:00:00Z"),
        json!("2026-11-22 10:00"),
        json!(1795309763),
        json!(true),
    ];
    let mut n = 0;
    for field in [
        "restartRequestedAt",
        "cancelRequestedAt",
        "provisionRequestedAt",
    ] {
        for bad in &bad_values {
            n += 1;
            let spec = json!({ "templateID": "t", field: bad });
            let (code, reason, message) = refusal(server.create(&format!("t-{n}"), spec).await);
            assert_eq!(
                (code, reason.as_str()),
                (422, "Invalid"),
                "{field}={bad}: {message}"
            );
            assert!(
                message.contains(&format!("spec.{field}")),
                "{field}={bad}: {message}"
            );
        }
        // A well-formed time is taken, with an offset too.
        n += 1;
        let spec = json!({ "templateID": "t", field: "2026-11-22T10:00:00+02:00" });
        server.create(&format!("t-{n}"), spec).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_spec_fields_are_pruned_or_refused_with_strict_validation() -> anyhow::Result<()> {
    let server = Server::new("bad-fields").await?;
    let spec = json!({
        "templateID": "t",
        "cpus": 4,
        "templateParameters": r#"{"free": {"form": true}}"#,
    });
    // Default validation (Warn): accepted, the unknown field silently dropped...
    server.create("pruned", spec.clone()).await?;
    let stored = server.typed().get("pruned").await?;
    let stored = serde_json::to_value(&stored)?;
    assert!(stored["spec"].get("cpus").is_none(), "{stored}");
    // ... while templateParameters, a JSON string, reaches the store unchanged.
    assert_eq!(
        stored["spec"]["templateParameters"],
        r#"{"free": {"form": true}}"#
    );

    // fieldValidation=Strict: refused, naming the field.
    let (code, reason, message) = refusal(server.create_strict("strict", spec.clone()).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"), "{message}");
    assert!(message.contains("unknown field"), "{message}");
    assert!(message.contains("spec.cpus"), "{message}");
    assert!(server.typed().get_opt("strict").await?.is_none());

    // Server-side apply with strict validation, as `kubectl apply --validate=strict`.
    let apply = json!({
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": { "name": "applied" },
        "spec": spec,
    });
    // Server-side apply refuses an undeclared field whatever the validation asked for;
    // this kube-apiserver answers 500 "failed to create typed patch object".
    for params in [
        PatchParams::apply("bad-input-test").validation_strict(),
        PatchParams::apply("bad-input-test"),
    ] {
        let (code, _, message) = refusal(
            server
                .dynamic()
                .patch("applied", &params, &Patch::Apply(&apply))
                .await,
        );
        assert!(matches!(code, 400 | 422 | 500), "{code}: {message}");
        assert!(message.contains(".spec.cpus"), "{message}");
        assert!(message.contains("not declared in schema"), "{message}");
    }
    assert!(server.typed().get_opt("applied").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovision_failure_policy_is_block_or_proceed() -> anyhow::Result<()> {
    let server = Server::new("bad-policy").await?;
    for (i, bad) in [json!("Sometimes"), json!("block"), json!(""), json!(1)]
        .into_iter()
        .enumerate()
    {
        let spec = json!({ "templateID": "t", "deprovisionFailurePolicy": bad });
        let (code, reason, message) = refusal(server.create(&format!("p-{i}"), spec).await);
        assert_eq!(
            (code, reason.as_str()),
            (422, "Invalid"),
            "{bad}: {message}"
        );
        assert!(
            message.contains("spec.deprovisionFailurePolicy"),
            "{bad}: {message}"
        );
        if bad.is_string() {
            assert!(
                message.contains("\"Block\"") && message.contains("\"Proceed\""),
                "lists the allowed values: {message}"
            );
        }
    }
    for policy in ["Block", "Proceed"] {
        let ci = ComputeInstance::new(
            &format!("ok-{}", policy.to_ascii_lowercase()),
            serde_json::from_value::<ComputeInstanceSpec>(
                json!({ "templateID": "t", "deprovisionFailurePolicy": policy }),
            )?,
        );
        server.typed().create(&PostParams::default(), &ci).await?;
    }
    Ok(())
}

// ---- the runner's configuration ----------------------------------------------------------

/// A configuration that passes validation; the runner then stops at the missing cluster.
fn valid_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CLOUDKIT_PROVISIONING_PROVIDER", "aap"),
        ("CLOUDKIT_AAP_URL", "https://aap.example.com/api/controller"),
        ("CLOUDKIT_AAP_TOKEN", "t"),
        ("CLOUDKIT_AAP_PROVISION_TEMPLATE", "cloudkit-create"),
        ("CLOUDKIT_AAP_DEPROVISION_TEMPLATE", "cloudkit-delete"),
        ("KUBECONFIG", "/nonexistent/cloudkit/kubeconfig"),
    ]
}

fn run_runner(env: &[(&str, &str)]) -> anyhow::Result<Output> {
    Ok(Command::new(runner_binary()?)
        .env_clear()
        .envs(env.iter().copied())
        .output()?)
}

/// Exit code 2 and exactly one line on stderr that names `variable`.
fn assert_config_error(case: &str, out: &Output, variable: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{case}: not one line: {stderr}");
    assert!(
        lines[0].contains(variable),
        "{case}: does not name {variable}: {stderr}"
    );
    assert!(
        lines[0].starts_with("cloudkit-runner: "),
        "{case}: {stderr}"
    );
}

#[test]
fn a_valid_configuration_gets_as_far_as_the_cluster() -> anyhow::Result<()> {
    let out = run_runner(&valid_env())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("cannot reach the Kubernetes API"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn each_bad_setting_stops_the_runner_with_one_line_naming_it() -> anyhow::Result<()> {
    // (variable, value, the variable the message must name)
    let cases: &[(&str, &str, &str)] = &[
        (
            "CLOUDKIT_PROVISIONING_PROVIDER",
            "awx",
            "CLOUDKIT_PROVISIONING_PROVIDER",
        ),
        ("CLOUDKIT_AAP_URL", "aap.example.com", "CLOUDKIT_AAP_URL"),
        (
            "CLOUDKIT_AAP_URL",
            "ftp://aap.example.com/api",
            "CLOUDKIT_AAP_URL",
        ),
        ("CLOUDKIT_AAP_URL", "https://", "CLOUDKIT_AAP_URL"),
        ("CLOUDKIT_RETRY_BASE", "-1s", "CLOUDKIT_RETRY_BASE"),
        ("CLOUDKIT_RETRY_MAX", "ten minutes", "CLOUDKIT_RETRY_MAX"),
        (
            "CLOUDKIT_CANCEL_DEADLINE",
            "2 m",
            "CLOUDKIT_CANCEL_DEADLINE",
        ),
        (
            "CLOUDKIT_RESTART_DEADLINE",
            "5mins",
            "CLOUDKIT_RESTART_DEADLINE",
        ),
        ("CLOUDKIT_EDA_DEADLINE", "forever", "CLOUDKIT_EDA_DEADLINE"),
        ("CLOUDKIT_HTTP_TIMEOUT", "1.5", "CLOUDKIT_HTTP_TIMEOUT"),
        ("CLOUDKIT_LEASE_DURATION", "1s", "CLOUDKIT_LEASE_DURATION"),
        (
            "CLOUDKIT_METRICS_ADDR",
            "localhost:8080",
            "CLOUDKIT_METRICS_ADDR",
        ),
        ("CLOUDKIT_METRICS_ADDR", "8080", "CLOUDKIT_METRICS_ADDR"),
        (
            "CLOUDKIT_METRICS_ADDR",
            "0.0.0.0:http",
            "CLOUDKIT_METRICS_ADDR",
        ),
        (
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
            "   ",
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        ),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
            "eda.example.com/provision",
            "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
        ),
        (
            "CLOUDKIT_EDA_HMAC_FORMAT",
            "binary",
            "CLOUDKIT_EDA_HMAC_FORMAT",
        ),
        (
            "CLOUDKIT_EDA_HMAC_HEADER",
            "X Signature",
            "CLOUDKIT_EDA_HMAC_HEADER",
        ),
    ];
    for (variable, value, named) in cases {
        let mut env = valid_env();
        env.retain(|(k, _)| k != variable);
        env.push((variable, value));
        if variable.contains("WEBHOOK") {
            env.push((
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                "http://eda/d",
            ));
        }
        if variable.starts_with("CLOUDKIT_EDA_HMAC") {
            env.push((
                "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
                "http://eda/p",
            ));
            env.push((
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                "http://eda/d",
            ));
        }
        let out = run_runner(&env)?;
        assert_config_error(&format!("{variable}={value:?}"), &out, named);
    }
    Ok(())
}

/// Every value the upstream operator accepted keeps its meaning: Go durations, a poll
/// interval it would have replaced by 30s, and an unset provider inferred from what is set.
#[test]
fn upstream_settings_keep_their_meaning() -> anyhow::Result<()> {
    let reaches_the_cluster = |case: &str, env: &[(&str, &str)]| -> anyhow::Result<String> {
        let out = run_runner(env)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(
            stderr.contains("cannot reach the Kubernetes API"),
            "{case}: {stderr}"
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for value in ["1m30s", "500ms", "1.5h", "2s"] {
        let mut env = valid_env();
        env.push(("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", value));
        let logs = reaches_the_cluster(value, &env)?;
        assert!(!logs.contains("POLL_INTERVAL"), "{value}: {logs}");
    }
    for value in ["30", "0s", "-5s", "soon"] {
        let mut env = valid_env();
        env.push(("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", value));
        let logs = reaches_the_cluster(value, &env)?;
        assert!(
            logs.contains("CLOUDKIT_AAP_STATUS_POLL_INTERVAL") && logs.contains("using 30s"),
            "{value}: {logs}"
        );
    }
    // No provider set: only the AAP URL → aap; only the webhooks → eda (upstream's default).
    let mut aap = valid_env();
    aap.retain(|(k, _)| *k != "CLOUDKIT_PROVISIONING_PROVIDER");
    reaches_the_cluster("inferred aap", &aap)?;
    let mut eda: Vec<(&str, &str)> = aap
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("CLOUDKIT_AAP"))
        .collect();
    eda.push((
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
        "http://eda/p",
    ));
    eda.push((
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
        "http://eda/d",
    ));
    reaches_the_cluster("inferred eda", &eda)?;
    // Both, or neither: ambiguous, said in one line naming the variable.
    let mut both = aap.clone();
    both.push((
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
        "http://eda/p",
    ));
    both.push((
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
        "http://eda/d",
    ));
    assert_config_error(
        "both",
        &run_runner(&both)?,
        "CLOUDKIT_PROVISIONING_PROVIDER",
    );
    let neither: Vec<(&str, &str)> = eda
        .iter()
        .copied()
        .filter(|(k, _)| !k.contains("WEBHOOK"))
        .collect();
    assert_config_error(
        "neither",
        &run_runner(&neither)?,
        "CLOUDKIT_PROVISIONING_PROVIDER",
    );
    Ok(())
}

#[test]
fn a_retry_max_below_the_base_names_both() -> anyhow::Result<()> {
    let mut env = valid_env();
    env.extend([("CLOUDKIT_RETRY_BASE", "1m"), ("CLOUDKIT_RETRY_MAX", "10s")]);
    let out = run_runner(&env)?;
    assert_config_error("retry max < base", &out, "CLOUDKIT_RETRY_MAX");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLOUDKIT_RETRY_BASE"));
    Ok(())
}

#[test]
fn each_missing_setting_stops_the_runner_with_one_line_naming_it() -> anyhow::Result<()> {
    for (missing, named) in [
        ("CLOUDKIT_AAP_URL", "CLOUDKIT_AAP_URL"),
        ("CLOUDKIT_AAP_TOKEN", "CLOUDKIT_AAP_TOKEN"),
        (
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
            "CLOUDKIT_AAP_PROVISION_TEMPLATE",
        ),
        (
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
        ),
    ] {
        let mut env = valid_env();
        env.retain(|(k, _)| *k != missing);
        let out = run_runner(&env)?;
        assert_config_error(&format!("without {missing}"), &out, named);
    }
    // The EDA provider needs both webhooks.
    let mut env = valid_env();
    env.retain(|(k, _)| !k.starts_with("CLOUDKIT_AAP"));
    env.push(("CLOUDKIT_PROVISIONING_PROVIDER", "eda"));
    let out = run_runner(&env)?;
    assert_config_error(
        "eda without webhooks",
        &out,
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
    );
    env.push((
        "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
        "http://eda/p",
    ));
    let out = run_runner(&env)?;
    assert_config_error(
        "eda without a deprovision webhook",
        &out,
        "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
    );
    // A token file that cannot be read is found when the token is first needed, not at
    // start-up (a mounted Secret may appear later); that is the fault matrix's business.
    Ok(())
}

/// Lifecycle rule 3 (docs/lifecycle-rules.md): an invalid history limit is not fatal; the
/// default is used, with a warning naming the variable.
#[test]
fn an_invalid_history_limit_falls_back_to_ten_with_a_warning() -> anyhow::Result<()> {
    for value in ["ten", "0", "-3"] {
        let mut env = valid_env();
        env.push(("CLOUDKIT_MAX_JOB_HISTORY", value));
        let out = run_runner(&env)?;
        // Past the configuration, stopped by the missing cluster.
        assert_eq!(out.status.code(), Some(1), "{value}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let warning = stdout
            .lines()
            .find(|l| l.contains("CLOUDKIT_MAX_JOB_HISTORY"))
            .unwrap_or_else(|| panic!("{value}: no warning in {stdout}"));
        assert!(warning.contains("\"WARN\""), "{warning}");
        assert!(warning.contains("using 10"), "{warning}");
    }
    Ok(())
}

/// Values clap itself parses (booleans, numbers): a non-zero exit that names the setting,
/// no panic.
#[test]
fn values_clap_parses_are_refused_naming_the_setting() -> anyhow::Result<()> {
    for (variable, value, flag) in [
        ("CLOUDKIT_LEADER_ELECTION", "maybe", "--leader-election"),
        (
            "CLOUDKIT_DEPROVISION_ATTEMPTS",
            "many",
            "--deprovision-attempts",
        ),
        (
            "CLOUDKIT_DEPROVISION_ATTEMPTS",
            "-1",
            "--deprovision-attempts",
        ),
    ] {
        let mut env = valid_env();
        env.push((variable, value));
        let out = run_runner(&env)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains(flag) || stderr.contains(variable),
            "{variable}={value}: {stderr}"
        );
        assert!(stderr.contains(value), "{stderr}");
    }
    Ok(())
}

/// The same one-line rule as for the values the runner checks itself.
#[test]
fn values_clap_parses_are_one_line_naming_the_variable() -> anyhow::Result<()> {
    for (variable, value) in [
        ("CLOUDKIT_LEADER_ELECTION", "maybe"),
        ("CLOUDKIT_DEPROVISION_ATTEMPTS", "many"),
        // No request could ever be sent.
        ("CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS", "0"),
    ] {
        let mut env = valid_env();
        env.push((variable, value));
        let out = run_runner(&env)?;
        assert_config_error(&format!("{variable}={value}"), &out, variable);
    }
    Ok(())
}

// ---- the plugin's arguments --------------------------------------------------------------

fn plugin(args: &[&str], kubeconfig: &Path) -> anyhow::Result<Output> {
    let bin = workspace_binary("kubectl-cloudkit", "kubectl-cloudkit")?;
    Ok(Command::new(bin)
        .args(args)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()?)
}

#[test]
fn plugin_argument_errors_are_one_line_with_a_usage_exit() -> anyhow::Result<()> {
    // No cluster: argument errors must be found before one is needed.
    let kubeconfig = Path::new("/nonexistent/cloudkit/kubeconfig");
    // (arguments, what the line must name)
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["restart", "vm", "--at", "tomorrow"],
            &["--at", "tomorrow"],
        ),
        (
            &["restart", "vm", "--at", "2026-11-22"],
            &["--at", "2026-11-22"],
        ),
        (&["restart", "vm", "--in", "soon"], &["--in", "soon"]),
        // Read as flags, as any CLI would: the line names what it could not place.
        (&["restart", "vm", "--in", "-5m"], &["'-5'"]),
        (&["restart", "vm", "--in", "0s"], &["--in", "0s"]),
        (&["restart", "vm", "--in", "1500ms"], &["--in", "1500ms"]),
        (
            &[
                "restart",
                "vm",
                "--at",
                "2026-11-22T10:00:00Z",
                "--in",
                "5m",
            ],
            &["--at", "--in"],
        ),
        (&["restart", "vm", "--timeout", "5m"], &["--wait"]),
        (
            &["restart", "vm", "--wait", "--timeout", "never"],
            &["--timeout", "never"],
        ),
        (&["frobnicate", "vm"], &["frobnicate"]),
        (&["restrat", "vm"], &["restrat"]),
        (&["restart"], &["<NAME>"]),
        (&["jobs"], &["<NAME>"]),
        (&["cancel"], &["<NAME>"]),
        (&["describe"], &["<NAME>"]),
        (&["provision"], &["<NAME>"]),
        (&["jobs", "vm", "-o", "xml"], &["xml"]),
        (&["list", "--color", "sometimes"], &["sometimes"]),
        (&["jobs", "vm", "--no-such-flag"], &["--no-such-flag"]),
    ];
    for (args, names) in cases {
        let out = plugin(args, kubeconfig)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let case = args.join(" ");
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(out.stdout.is_empty(), "{case}: {:?}", out.stdout);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: not one line: {stderr}");
        assert!(lines[0].starts_with("error: "), "{case}: {stderr}");
        assert!(lines[0].contains("--help"), "points at help: {stderr}");
        for name in *names {
            assert!(
                lines[0].contains(name),
                "{case}: does not name {name}: {stderr}"
            );
        }
    }
    Ok(())
}

#[test]
fn plugin_without_a_cluster_says_so_in_one_line() -> anyhow::Result<()> {
    let out = plugin(
        &["jobs", "vm"],
        Path::new("/nonexistent/cloudkit/kubeconfig"),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    Ok(())
}
