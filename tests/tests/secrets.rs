//! Secrets stay secret and TLS is verified (lifecycle rule 7, docs/lifecycle-rules.md).
//!
//! The runner gets distinctive AAP and EDA tokens, an HMAC secret and a webhook URL with a
//! credential in its query; a lifecycle with failures (401s, 5xx, 429, a failed job, a
//! rejected webhook) runs through both providers; then the runner's whole log (at trace
//! level), every Event, every ComputeInstance, what the runner sent to the simulators (job
//! extra_vars, event payloads, request paths and queries) and its metrics are searched:
//! none may hold a secret. TLS: a self-signed AAP is refused with an error naming the host
//! until the runner is given its certificate (`CLOUDKIT_AAP_CA_FILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cloudkit_runner::aap::{AapClient, AapConfig, AapError, RetryPolicy, Secret, TokenSource};
use cloudkit_shared::conditions as cond;
use cloudkit_shared::{ComputeInstance, JobState, JobType, reasons};
use cloudkit_testbed::aap_sim::{
    AapSimConfig, AapSimulator, Access, Endpoint, Outcome, Role, TemplateConfig,
};
use cloudkit_testbed::bed::{Bed, PROVISION_TEMPLATE, quick_job};
use cloudkit_testbed::eda_sim::{Fault, HmacFormat, Scope};
use cloudkit_testbed::observe::{condition, jobs_of, running};
use cloudkit_testbed::runner_process::{RunnerProcess, metrics_addr, runner_binary};
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const AAP_TOKEN: &str = "aapTOKEN-5f3c9a1e77d0-do-not-leak";
const EDA_SECRET: &str = "edaTOKEN-b27d04c8e913-do-not-leak";
const HMAC_SECRET: &str = "hmacSECRET-0c44e1a9f2b6-do-not-leak";
const URL_SECRET: &str = "urlSECRET-9e8d7c6b5a41-do-not-leak";

/// The secrets and a distinctive middle part of each (a truncated or partly masked
/// secret is still a leak).
const NEEDLES: [&str; 8] = [
    AAP_TOKEN,
    EDA_SECRET,
    HMAC_SECRET,
    URL_SECRET,
    "5f3c9a1e77d0",
    "b27d04c8e913",
    "0c44e1a9f2b6",
    "9e8d7c6b5a41",
];

/// Panics naming where a secret showed up, with the line around it.
fn assert_no_secret(what: &str, text: &str) {
    for needle in NEEDLES {
        if let Some(at) = text.find(needle) {
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} shows a secret ({needle}): {}", &text[start..end]);
        }
    }
}

fn provisions(ci: &ComputeInstance) -> Vec<cloudkit_shared::JobEntry> {
    jobs_of(ci, JobType::Provision)
}

/// `Bed::wait_for`, explained with the runner's own log lines (its trace-level log is
/// mostly other crates).
async fn wait(
    bed: &Bed,
    name: &str,
    what: &str,
    check: impl Fn(Option<&ComputeInstance>) -> bool,
) -> anyhow::Result<Option<ComputeInstance>> {
    bed.wait_for(name, what, WAIT, check).await.map_err(|e| {
        let log = bed.runner_logs();
        let ours: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(r#""target":"cloudkit_runner"#))
            .collect();
        let tail = &ours[ours.len().saturating_sub(40)..];
        anyhow::anyhow!(
            "{e}\nthe runner's own log, last lines:\n{}",
            tail.join("\n")
        )
    })
}

fn progressing_reason(ci: Option<&ComputeInstance>, reason: &str) -> bool {
    ci.and_then(|c| condition(c, cond::PROGRESSING))
        .is_some_and(|c| c.reason == reason)
}

async fn events_json(bed: &Bed) -> anyhow::Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(bed.client.clone(), &bed.namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect())
}

/// The runner as `Bed::start_runner` starts it, but with the AAP token as a value
/// (`CLOUDKIT_AAP_TOKEN`) instead of a file, and every level of logging on.
fn start_runner(bed: &mut Bed, extra: &[(&str, &str)]) -> anyhow::Result<()> {
    let extra = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut env = bed.runner_env(extra);
    env.retain(|(k, _)| k != "CLOUDKIT_AAP_TOKEN_FILE");
    env.push(("CLOUDKIT_AAP_TOKEN".into(), AAP_TOKEN.into()));
    let log = bed.dir.path().join("runner.log");
    bed.runner = Some(RunnerProcess::start(bed.cp.kubeconfig_path(), env, log)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_events_status_or_what_the_runner_sends() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("secrets").await?;
    let eda_env = bed.start_eda().await?;
    let eda_url = |env: &[(String, String)], key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .expect("set by start_eda")
    };
    let provision_webhook = format!(
        "{}?token={URL_SECRET}",
        eda_url(&eda_env, "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK")
    );
    let deprovision_webhook = format!(
        "{}?token={URL_SECRET}",
        eda_url(&eda_env, "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK")
    );
    let secrets = [
        ("CLOUDKIT_LOG", "trace"),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
            provision_webhook.as_str(),
        ),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
            deprovision_webhook.as_str(),
        ),
        ("CLOUDKIT_EDA_TOKEN", EDA_SECRET),
        ("CLOUDKIT_EDA_HMAC_SECRET", HMAC_SECRET),
    ];
    let mut snapshots: Vec<String> = Vec::new();

    // ---- AAP: the token is not accepted yet (401), then 503s, a 429 and a failed job.
    start_runner(&mut bed, &secrets)?;
    bed.create_default("vm-a").await?;
    let ci = wait(&bed, "vm-a", "401 shown", |ci| {
        progressing_reason(ci, reasons::AUTH_REJECTED)
    })
    .await?;
    snapshots.push(serde_json::to_string(&ci)?);
    bed.aap.fail_next(Endpoint::Launch, 2, 503);
    bed.aap.rate_limit_next(Endpoint::JobList, 1, 1);
    bed.aap.set_instance_behavior(
        &bed.namespace,
        "vm-a",
        Some(Role::Provision),
        quick_job()
            .outcome(Outcome::Failed)
            .explanation("Playbook failed: no capacity"),
    );
    bed.aap.set_token(AAP_TOKEN, Access::ReadWrite);
    let ci = wait(&bed, "vm-a", "an AAP job failed", |ci| {
        ci.is_some_and(|c| {
            provisions(c)
                .iter()
                .any(|j| j.job_id.is_some() && j.state == JobState::Failed)
        })
    })
    .await?;
    snapshots.push(serde_json::to_string(&ci)?);
    bed.aap
        .clear_instance_behavior(&bed.namespace, "vm-a", Some(Role::Provision));
    let ci = wait(&bed, "vm-a", "Running", running).await?;
    snapshots.push(serde_json::to_string(&ci)?);
    bed.aap.fail_next(Endpoint::Launch, 1, 502);
    bed.delete("vm-a").await?;
    wait(&bed, "vm-a", "deleted", |ci| ci.is_none()).await?;

    // ---- EDA: the receiver does not know the token yet (401), then a 503.
    let runner = bed.runner();
    runner.set_env("CLOUDKIT_PROVISIONING_PROVIDER", "eda");
    runner.restart()?;
    let eda = bed.eda.as_ref().expect("started");
    eda.set_hmac(Some(HMAC_SECRET), HmacFormat::Hex);
    bed.create_default("vm-e").await?;
    let ci = wait(&bed, "vm-e", "EDA 401 shown", |ci| {
        progressing_reason(ci, reasons::WEBHOOK_REJECTED)
    })
    .await?;
    snapshots.push(serde_json::to_string(&ci)?);
    let eda = bed.eda.as_ref().expect("started");
    eda.fault_next(Scope::Any, Fault::Status(503), 1);
    eda.set_token(Some(EDA_SECRET));
    wait(&bed, "vm-e", "Running through EDA", running).await?;

    // ---- search everything a person or a tool could read.
    let log = bed.runner_logs();
    // The failures did happen, at every log level, or the search would prove nothing.
    assert!(
        log.contains(r#""level":"TRACE""#),
        "the log is at trace level"
    );
    for shown in ["AAP rejected the token (401)", "AAP answered 503"] {
        assert!(log.contains(shown), "not in the runner's log: {shown}");
    }
    let eda_statuses: Vec<Option<u16>> = bed
        .eda
        .as_ref()
        .expect("started")
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(eda_statuses.contains(&Some(401)), "{eda_statuses:?}");
    assert!(eda_statuses.contains(&Some(503)), "{eda_statuses:?}");
    assert_no_secret("the runner's log", &log);
    let events = events_json(&bed).await?;
    assert!(events.len() >= 5, "{events:#?}");
    for event in &events {
        assert_no_secret("an Event", event);
    }
    for ci in bed.instances().list(&ListParams::default()).await? {
        snapshots.push(serde_json::to_string(&ci)?);
    }
    for snapshot in &snapshots {
        assert_no_secret("a ComputeInstance", snapshot);
    }
    // What the runner sent: AAP request lines and the launches' extra_vars (the payload
    // the playbooks see) ...
    let aap = serde_json::to_string(&bed.aap.ledger())?;
    assert!(
        aap.contains("cloudkit_correlation_key"),
        "launches recorded"
    );
    assert_no_secret("what the runner sent to AAP", &aap);
    // ... and the EDA events (payloads, headers as the receiver saw them, the
    // credential headers taken out as a receiver does). The query of the configured
    // webhook URL is the user's to send; only what the runner added is checked.
    let eda = bed.eda.as_ref().expect("started").ledger();
    assert!(!eda.events.is_empty(), "events recorded");
    for event in &eda.events {
        assert_no_secret("an EDA event", &serde_json::to_string(&event.event)?);
    }
    for request in &eda.requests {
        assert_no_secret("EDA request headers", &format!("{:?}", request.headers));
        assert_no_secret("an EDA request path", &request.path);
    }
    let addr = metrics_addr(&log).expect("the runner logs its metrics address");
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    assert!(metrics.contains("cloudkit"), "{metrics}");
    assert_no_secret("/metrics", &metrics);
    Ok(())
}

/// `--help` and a configuration error with every secret in the environment.
#[test]
fn help_and_configuration_errors_do_not_echo_secrets() -> anyhow::Result<()> {
    let bin = runner_binary()?;
    let env = [
        // Named: with both AAP and a webhook set, the provider is not inferred.
        ("CLOUDKIT_PROVISIONING_PROVIDER", "aap"),
        ("CLOUDKIT_AAP_URL", "https://aap.example.com/api/controller"),
        ("CLOUDKIT_AAP_TOKEN", AAP_TOKEN),
        ("CLOUDKIT_AAP_PROVISION_TEMPLATE", "p"),
        ("CLOUDKIT_AAP_DEPROVISION_TEMPLATE", "d"),
        ("CLOUDKIT_EDA_TOKEN", EDA_SECRET),
        ("CLOUDKIT_EDA_HMAC_SECRET", HMAC_SECRET),
    ];
    let run = |args: &[&str], extra: &[(&str, &str)]| -> anyhow::Result<std::process::Output> {
        Ok(Command::new(&bin)
            .args(args)
            .env_clear()
            .envs(env.iter().chain(extra).copied())
            .output()?)
    };
    let help = run(&["--help"], &[])?;
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("CLOUDKIT_AAP_TOKEN"), "{text}");
    assert_no_secret("--help", &text);
    for bad in [
        ("CLOUDKIT_RETRY_BASE", "soon"),
        (
            "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK",
            "not a url with urlSECRET-9e8d7c6b5a41-do-not-leak",
        ),
        ("CLOUDKIT_LEADER_ELECTION", "maybe"),
        ("CLOUDKIT_METRICS_ADDR", "everywhere"),
    ] {
        let out = run(&[], &[bad])?;
        assert!(!out.status.success(), "{bad:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(bad.0) || stderr.contains("leader-election"),
            "{bad:?}: {stderr}"
        );
        for needle in [AAP_TOKEN, EDA_SECRET, HMAC_SECRET] {
            assert!(!stderr.contains(needle), "{bad:?}: {stderr}");
        }
        assert_no_secret(
            &format!("stdout with {bad:?}"),
            &String::from_utf8_lossy(&out.stdout),
        );
    }
    Ok(())
}

/// A webhook URL that fails validation is named, but its credentials are not repeated.
#[test]
fn an_invalid_url_is_refused_without_echoing_its_credentials() -> anyhow::Result<()> {
    let bin = runner_binary()?;
    for url in [
        format!("eda.example.com/hook?token={URL_SECRET}"),
        format!("ftp://someone:{URL_SECRET}@eda.example.com/hook"),
    ] {
        let out = Command::new(&bin)
            .env_clear()
            .env("CLOUDKIT_PROVISIONING_PROVIDER", "eda")
            .env("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK", &url)
            .env(
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK",
                "http://eda/d",
            )
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK"),
            "{stderr}"
        );
        assert_no_secret("the configuration error", &stderr);
    }
    Ok(())
}

// ---- TLS --------------------------------------------------------------------------------

/// A TLS front on 127.0.0.1 with a self-signed certificate, forwarding to a plain-HTTP
/// server (the AAP simulator): AAP behind HTTPS.
struct TlsFront {
    addr: SocketAddr,
    /// The self-signed certificate, PEM: what `CLOUDKIT_AAP_CA_FILE` points at.
    cert_file: PathBuf,
    task: JoinHandle<()>,
}

impl TlsFront {
    async fn start(target: SocketAddr, dir: &Path) -> anyhow::Result<Self> {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
        let cert_file = dir.join("aap-cert.pem");
        std::fs::write(&cert_file, certified.cert.pem())?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    certified.signing_key.serialize_der(),
                )),
            )?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            cert_file,
            task,
        })
    }

    /// `https://127.0.0.1:PORT/api/controller`.
    fn base_url(&self) -> String {
        format!("https://{}/api/controller", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client(front: &TlsFront, tweak: impl FnOnce(&mut AapConfig)) -> AapClient {
    let mut config = AapConfig::new(
        front.base_url(),
        TokenSource::Static(Secret::new(AAP_TOKEN)),
    );
    config.retry = RetryPolicy::none();
    config.request_timeout = Duration::from_secs(10);
    tweak(&mut config);
    AapClient::new(config).expect("a valid configuration")
}

/// The runner's AAP client verifies AAP's certificate by default: a self-signed one is a
/// TLS error that names the host; the certificate as CA bundle, or (for a lab) turning
/// verification off, lets it through.
#[tokio::test]
async fn aap_tls_is_verified_unless_disabled() -> anyhow::Result<()> {
    let sim = AapSimulator::start(
        AapSimConfig::new()
            .token(AAP_TOKEN, Access::ReadWrite)
            .template(TemplateConfig::job(10, PROVISION_TEMPLATE).role(Role::Provision)),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let front = TlsFront::start(sim.addr(), dir.path()).await?;

    let err = client(&front, |_| {})
        .template(PROVISION_TEMPLATE)
        .await
        .expect_err("a self-signed certificate is not trusted by default");
    let message = err.to_string();
    assert!(matches!(err, AapError::Tls { .. }), "{err:?}");
    assert!(message.contains("TLS"), "{message}");
    assert!(
        message.contains(&format!("https://{}/", front.addr)),
        "names the host: {message}"
    );
    assert!(
        message.to_ascii_lowercase().contains("certificate"),
        "says what is wrong: {message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert_no_secret("the TLS error", &message);
    assert!(err.is_permanent(), "retrying cannot fix a certificate");
    assert_eq!(err.reason(), reasons::PROVIDER_UNREACHABLE);
    assert!(
        sim.requests().is_empty(),
        "no request went past the refused handshake"
    );

    let found = client(&front, |c| c.ca_bundle = Some(front.cert_file.clone()))
        .template(PROVISION_TEMPLATE)
        .await?;
    assert_eq!(found.id, 10);

    let found = client(&front, |c| c.insecure_skip_tls_verify = true)
        .template(PROVISION_TEMPLATE)
        .await?;
    assert_eq!(found.id, 10);
    Ok(())
}

/// The same through the runner process: without `CLOUDKIT_AAP_CA_FILE` the instance shows
/// the TLS failure naming the host; with it, the instance provisions over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_reaches_a_self_signed_aap_only_with_its_certificate() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("secrets-tls").await?;
    let front = TlsFront::start(bed.aap.addr(), bed.dir.path()).await?;
    let url = front.base_url();
    bed.start_runner(vec![("CLOUDKIT_AAP_URL".into(), url.clone())])?;
    bed.create_default("vm-tls").await?;
    let ci = bed
        .wait_for("vm-tls", "the TLS failure shown", WAIT, |ci| {
            ci.and_then(|c| provisions(c).pop())
                .is_some_and(|j| j.message.contains("TLS"))
        })
        .await?
        .expect("exists");
    let job = provisions(&ci).pop().expect("a job");
    assert!(
        job.message.contains(&format!("https://{}/", front.addr)),
        "names the host: {}",
        job.message
    );
    assert_eq!(job.reason.as_deref(), Some(reasons::PROVIDER_UNREACHABLE));
    assert!(
        bed.aap.jobs().is_empty(),
        "nothing launched over unverified TLS"
    );

    bed.runner().kill();
    bed.start_runner(vec![
        ("CLOUDKIT_AAP_URL".into(), url),
        (
            "CLOUDKIT_AAP_CA_FILE".into(),
            front.cert_file.display().to_string(),
        ),
    ])?;
    bed.wait_for("vm-tls", "Running over HTTPS", WAIT, running)
        .await?;
    assert_eq!(bed.aap.jobs_of(&bed.namespace, "vm-tls").len(), 1);
    Ok(())
}
