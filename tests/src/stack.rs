//! The whole local stack for `testbed up` / `demo`: a private control plane, the AAP and
//! KubeVirt simulators and the real runner, with progress a person can follow.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::aap_sim::{
    AapSimConfig, AapSimulator, DEFAULT_TOKEN, JobBehavior, Role, TemplateConfig,
};
use crate::bed::{
    DEPROVISION_TEMPLATE, DEPROVISION_TEMPLATE_ID, PROVISION_TEMPLATE, PROVISION_TEMPLATE_ID,
};
use crate::control_plane::ControlPlane;
use crate::kubevirt_sim::KubevirtSimulator;
use crate::rulebook::{Rulebook, WebhookAuth};
use crate::runner_process::{RunnerProcess, runner_binary, target_dir, workspace_binary};

/// The bearer token between the runner and `up --eda`'s rulebook (loopback only).
const EDA_TOKEN: &str = "testbed-eda-token";

/// What `up` starts, and how.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Per-phase job duration of the simulated AAP jobs.
    pub job_duration: Duration,
    /// Fraction (0..1) of AAP requests answered with a 5xx.
    pub error_rate: f64,
    /// A real AAP instead of the simulator.
    pub aap_url: Option<String>,
    pub aap_token_file: Option<PathBuf>,
    /// Start everything but the runner.
    pub no_runner: bool,
    /// Provision through the real ansible-rulebook (the reference rulebook in `ansible/`)
    /// instead of AAP; the AAP simulator still runs, for a switch back.
    pub eda: bool,
    /// Namespace the demo's instances live in.
    pub namespace: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            job_duration: Duration::from_secs(2),
            error_rate: 0.0,
            aap_url: None,
            aap_token_file: None,
            no_runner: false,
            eda: false,
            namespace: "cloudkit-demo".into(),
        }
    }
}

/// Progress lines with elapsed time, so no minute passes in silence.
pub struct Progress(Instant);

impl Progress {
    pub fn new() -> Self {
        Self(Instant::now())
    }

    pub fn say(&self, what: impl std::fmt::Display) {
        eprintln!("[{:>6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Stack {
    pub cp: ControlPlane,
    pub client: kube::Client,
    pub aap: Option<AapSimulator>,
    pub kubevirt: KubevirtSimulator,
    pub rulebook: Option<Rulebook>,
    pub runner: Option<RunnerProcess>,
    pub runner_env: Vec<(String, String)>,
    pub plugin_dir: PathBuf,
    pub dir: tempfile::TempDir,
    pub options: StackOptions,
}

impl Stack {
    pub async fn up(options: StackOptions, progress: &Progress) -> anyhow::Result<Self> {
        progress.say("building cloudkit-runner and kubectl-cloudkit (cargo, debug profile)");
        let build = tokio::task::spawn_blocking(|| -> anyhow::Result<PathBuf> {
            runner_binary()?;
            workspace_binary("kubectl-cloudkit", "kubectl-cloudkit")?;
            workspace_binary("kubectl-cloudkit", "kubectl_complete-cloudkit")?;
            Ok(target_dir().join("debug"))
        });
        progress.say("starting kube-apiserver and etcd (the first run builds them from Go modules: a few minutes)");
        let cp = ControlPlane::start().await?;
        progress.say(format!("control plane up at {}", cp.server_url()));
        let plugin_dir = build.await??;
        progress.say("binaries built");
        let client = cp.client().await?;
        create_namespace(&client, &options.namespace).await?;
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("aap-token");
        let (aap, aap_url, token_file) = match (&options.aap_url, &options.aap_token_file) {
            (Some(url), Some(token)) => {
                progress.say(format!("using the real AAP at {url}"));
                (None, url.clone(), token.clone())
            }
            (Some(_), None) => anyhow::bail!("--aap-url needs --aap-token-file"),
            _ => {
                let behavior = JobBehavior::uniform(options.job_duration / 3);
                let mut provision = TemplateConfig::job(PROVISION_TEMPLATE_ID, PROVISION_TEMPLATE);
                provision.role = Some(Role::Provision);
                provision.behavior = behavior.clone().cancel_delay(Duration::from_secs(1));
                let mut deprovision =
                    TemplateConfig::job(DEPROVISION_TEMPLATE_ID, DEPROVISION_TEMPLATE);
                deprovision.role = Some(Role::Deprovision);
                deprovision.behavior = behavior;
                let sim = AapSimulator::start(AapSimConfig {
                    templates: vec![provision, deprovision],
                    kube: Some(client.clone()),
                    ..AapSimConfig::default()
                })
                .await?;
                if options.error_rate > 0.0 {
                    for endpoint in [
                        crate::aap_sim::Endpoint::Launch,
                        crate::aap_sim::Endpoint::JobList,
                    ] {
                        sim.set_error_rate(endpoint, options.error_rate);
                    }
                }
                std::fs::write(&token_file, DEFAULT_TOKEN)?;
                progress.say(format!("AAP simulator at {}", sim.base_url()));
                let url = sim.base_url();
                (Some(sim), url, token_file)
            }
        };
        let kubevirt = KubevirtSimulator::start(client.clone(), None, Duration::from_millis(500));
        progress.say("KubeVirt simulator running (recreates deleted VMIs)");
        let mut runner_env: Vec<(String, String)> = [
            ("CLOUDKIT_PROVISIONING_PROVIDER", "aap".to_string()),
            ("CLOUDKIT_AAP_URL", aap_url),
            ("CLOUDKIT_AAP_TOKEN_FILE", token_file.display().to_string()),
            ("CLOUDKIT_AAP_PROVISION_TEMPLATE", PROVISION_TEMPLATE.into()),
            (
                "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
                DEPROVISION_TEMPLATE.into(),
            ),
            ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "1s".into()),
            ("CLOUDKIT_RETRY_BASE", "2s".into()),
            ("CLOUDKIT_RETRY_MAX", "30s".into()),
            ("CLOUDKIT_METRICS_ADDR", "127.0.0.1:0".into()),
            // `up` installs no APIService for the job-logs API.
            ("CLOUDKIT_LOGS_ADDR", "off".into()),
            ("CLOUDKIT_LEASE_NAMESPACE", "default".into()),
            ("CLOUDKIT_LEASE_DURATION", "4s".into()),
            ("POD_NAME", "cloudkit-runner-testbed".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rulebook = if options.eda {
            progress.say("starting ansible-rulebook (the first run installs the Ansible environment from PyPI: a few minutes)");
            let auth = WebhookAuth::Token(EDA_TOKEN.into());
            let rulebook = Rulebook::start(cp.kubeconfig_path(), auth.clone()).await?;
            progress.say(format!(
                "ansible-rulebook listening at {} (log: {})",
                rulebook.url(""),
                rulebook.log_path().display()
            ));
            runner_env.retain(|(k, _)| k != "CLOUDKIT_PROVISIONING_PROVIDER");
            runner_env.extend([
                ("CLOUDKIT_PROVISIONING_PROVIDER".into(), "eda".into()),
                (
                    "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK".into(),
                    rulebook.provision_url(),
                ),
                (
                    "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK".into(),
                    rulebook.deprovision_url(),
                ),
                auth.runner_env(),
            ]);
            Some(rulebook)
        } else {
            None
        };
        let runner = if options.no_runner {
            None
        } else {
            let log = dir.path().join("runner.log");
            let r = RunnerProcess::start(cp.kubeconfig_path(), runner_env.clone(), log)?;
            progress.say(format!(
                "cloudkit-runner started (log: {})",
                r.log_path().display()
            ));
            Some(r)
        };
        Ok(Self {
            cp,
            client,
            aap,
            kubevirt,
            rulebook,
            runner,
            runner_env,
            plugin_dir,
            dir,
            options,
        })
    }

    /// The lines a person pastes into another shell to use the stack.
    pub fn instructions(&self) -> String {
        let mut out = format!(
            "export KUBECONFIG={} PATH={}:$PATH\n",
            self.cp.kubeconfig_path().display(),
            self.plugin_dir.display()
        );
        if self.runner.is_none() {
            out.push_str("\n# --no-runner: run your own runner build with this environment:\n");
            for (k, v) in &self.runner_env {
                out.push_str(&format!("export {k}={v}\n"));
            }
            out.push_str("cargo run -p cloudkit-runner\n");
        }
        if let Some(rulebook) = &self.rulebook {
            out.push_str(&format!(
                "\n# provider: EDA, the real ansible-rulebook; its log (playbook output too):\ntail -f {}\n",
                rulebook.log_path().display()
            ));
        }
        let ns = &self.options.namespace;
        out.push_str(&format!(
            "\n# then try:\nkubectl apply -n {ns} -f manifests/samples/computeinstance.yaml\nkubectl cloudkit list -n {ns}\nkubectl cloudkit jobs -n {ns} NAME --watch\nkubectl cloudkit restart -n {ns} NAME --wait\nkubectl cloudkit describe -n {ns} NAME\n"
        ));
        out
    }

    /// Stops everything: runner first (SIGTERM), then simulators, then the control plane.
    pub async fn down(mut self, progress: &Progress) {
        if let Some(mut r) = self.runner.take() {
            let status = r.terminate(Duration::from_secs(10));
            progress.say(format!(
                "cloudkit-runner stopped ({})",
                status.map(|s| s.to_string()).unwrap_or_default()
            ));
        }
        if let Some(rulebook) = self.rulebook.take() {
            drop(rulebook);
            progress.say("ansible-rulebook stopped");
        }
        if let Some(sim) = self.aap.take() {
            sim.stop().await;
        }
        drop(self.kubevirt);
        drop(self.cp);
        progress.say("control plane stopped; everything is down");
    }
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
