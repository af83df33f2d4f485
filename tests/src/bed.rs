//! A test bed: the real control plane, the AAP and KubeVirt simulators, and the real
//! runner as a process, in a namespace of their own.

use std::future::Future;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudkit_shared::names::{INSTANCE_LABEL, TENANT_ANNOTATION};
use cloudkit_shared::tenant::Tenant;
use cloudkit_shared::{ComputeInstance, ComputeInstanceSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use tempfile::TempDir;

use crate::aap_sim::{
    AapSimConfig, AapSimulator, DEFAULT_TOKEN, JobBehavior, Role, TemplateConfig,
};
use crate::control_plane::ControlPlane;
use crate::eda_sim::{EdaSimConfig, EdaSimulator};
use crate::kubevirt_sim::{KubevirtSimulator, serves_namespace, vm_resource, vmi_resource};
use crate::reference_playbooks;
use crate::rulebook::{Rulebook, WebhookAuth};
use crate::runner_process::RunnerProcess;
use crate::tenants::TenantNames;

pub const PROVISION_TEMPLATE: &str = "cloudkit-create-compute-instance";
pub const DEPROVISION_TEMPLATE: &str = "cloudkit-delete-compute-instance";
pub const PROVISION_TEMPLATE_ID: u64 = 10;
pub const DEPROVISION_TEMPLATE_ID: u64 = 11;

pub struct Bed {
    pub client: kube::Client,
    pub namespace: String,
    pub aap: AapSimulator,
    pub kubevirt: KubevirtSimulator,
    pub runner: Option<RunnerProcess>,
    /// Started on demand by [`Bed::start_eda`].
    pub eda: Option<EdaSimulator>,
    /// The real ansible-rulebook, started on demand by [`Bed::start_rulebook`].
    pub rulebook: Option<Rulebook>,
    pub dir: TempDir,
    /// Last, so that a control plane of the bed's own stops after the runner and simulators.
    pub cp: BedControlPlane,
}

/// The control plane a bed runs on: one that outlives it (the test binary's shared one), or
/// one of its own.
pub enum BedControlPlane {
    Static(&'static ControlPlane),
    Own(Box<ControlPlane>),
}

impl Deref for BedControlPlane {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        match self {
            Self::Static(cp) => cp,
            Self::Own(cp) => cp,
        }
    }
}

/// The bearer token the bed's EDA simulator expects.
pub const EDA_TOKEN: &str = "eda-sim-token";

/// The job behaviour tests want by default: quick, successful.
pub fn quick_job() -> JobBehavior {
    JobBehavior {
        pending: Duration::from_millis(50),
        waiting: Duration::from_millis(50),
        running: Duration::from_millis(300),
        cancel_delay: Duration::from_millis(300),
        ..JobBehavior::default()
    }
}

impl Bed {
    /// Everything but the runner, on the shared control plane, in a fresh namespace.
    pub async fn without_runner(prefix: &str) -> anyhow::Result<Self> {
        Self::without_runner_on(ControlPlane::shared().await?, prefix).await
    }

    /// Everything but the runner, on `cp` (a control plane a test may stop), in a fresh
    /// namespace.
    pub async fn without_runner_on(
        cp: &'static ControlPlane,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        Self::on(BedControlPlane::Static(cp), prefix).await
    }

    /// Everything but the runner, on a control plane of the bed's own, stopped with it: for
    /// a runner that watches every namespace, which on the shared one would take other
    /// tests' instances.
    pub async fn alone_without_runner(prefix: &str) -> anyhow::Result<Self> {
        let cp = ControlPlane::start().await?;
        Self::on(BedControlPlane::Own(Box::new(cp)), prefix).await
    }

    async fn on(cp: BedControlPlane, prefix: &str) -> anyhow::Result<Self> {
        let client = cp.client().await?;
        let namespace = cp.test_namespace(prefix).await?;
        let mut provision = TemplateConfig::job(PROVISION_TEMPLATE_ID, PROVISION_TEMPLATE);
        provision.role = Some(Role::Provision);
        provision.behavior = quick_job();
        let mut deprovision = TemplateConfig::job(DEPROVISION_TEMPLATE_ID, DEPROVISION_TEMPLATE);
        deprovision.role = Some(Role::Deprovision);
        deprovision.behavior = quick_job();
        let aap = AapSimulator::start(AapSimConfig {
            templates: vec![provision, deprovision],
            kube: Some(client.clone()),
            ..AapSimConfig::default()
        })
        .await?;
        let kubevirt = KubevirtSimulator::start(
            client.clone(),
            Some(namespace.clone()),
            Duration::from_millis(300),
        );
        Ok(Self {
            cp,
            client,
            namespace,
            aap,
            kubevirt,
            runner: None,
            eda: None,
            rulebook: None,
            dir: tempfile::tempdir()?,
        })
    }

    /// Starts the EDA simulator; returns the runner settings that select it.
    pub async fn start_eda(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        let sim = EdaSimulator::start(
            EdaSimConfig::new()
                .token(EDA_TOKEN)
                .kube(self.client.clone()),
        )
        .await?;
        let env = vec![
            (
                "CLOUDKIT_PROVISIONING_PROVIDER".to_string(),
                "eda".to_string(),
            ),
            (
                "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK".into(),
                sim.provision_url(),
            ),
            (
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK".into(),
                sim.deprovision_url(),
            ),
            ("CLOUDKIT_EDA_TOKEN".into(), EDA_TOKEN.into()),
        ];
        self.eda = Some(sim);
        Ok(env)
    }

    /// Starts the real ansible-rulebook with the reference rulebook (`ansible/`), its
    /// playbooks acting as the bed's administrator; returns the runner settings that
    /// select it, authenticated by `auth`.
    pub async fn start_rulebook(
        &mut self,
        auth: WebhookAuth,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rulebook = Rulebook::start(self.cp.kubeconfig_path(), auth.clone()).await?;
        let env = vec![
            (
                "CLOUDKIT_PROVISIONING_PROVIDER".to_string(),
                "eda".to_string(),
            ),
            (
                "CLOUDKIT_COMPUTE_INSTANCE_PROVISION_WEBHOOK".into(),
                rulebook.provision_url(),
            ),
            (
                "CLOUDKIT_COMPUTE_INSTANCE_DEPROVISION_WEBHOOK".into(),
                rulebook.deprovision_url(),
            ),
            auth.runner_env(),
        ];
        self.rulebook = Some(rulebook);
        Ok(env)
    }

    /// Makes the bed's provision and deprovision templates run the reference playbooks
    /// (`ansible/`) for real instead of the simulated effects. The playbooks manage the
    /// VM and the `computeinstance-aap` finalizer themselves; the KubeVirt simulator still
    /// makes the VMI. The first call may install the Ansible environment (minutes).
    pub async fn use_real_playbooks(&self) -> anyhow::Result<()> {
        let env = tokio::task::spawn_blocking(crate::ansible_env::ensure).await??;
        let home = self.dir.path().join("ansible-home");
        std::fs::create_dir_all(&home)?;
        let kubeconfig = self.cp.kubeconfig_path();
        for (id, playbook) in [
            (
                PROVISION_TEMPLATE_ID,
                reference_playbooks::PROVISION_PLAYBOOK,
            ),
            (
                DEPROVISION_TEMPLATE_ID,
                reference_playbooks::DEPROVISION_PLAYBOOK,
            ),
        ] {
            let run = reference_playbooks::playbook_run(&env, playbook, kubeconfig, &home);
            anyhow::ensure!(
                self.aap.update_template(id, |t| t.playbook = Some(run)),
                "the bed's AAP simulator has no template {id}"
            );
        }
        Ok(())
    }

    /// Everything, with the runner started.
    pub async fn start(prefix: &str) -> anyhow::Result<Self> {
        let mut bed = Self::without_runner(prefix).await?;
        bed.start_runner(Vec::new())?;
        Ok(bed)
    }

    /// The runner's configuration for this bed; `extra` overrides.
    pub fn runner_env(&self, extra: Vec<(String, String)>) -> Vec<(String, String)> {
        let token_file = self.dir.path().join("aap-token");
        let _ = std::fs::write(&token_file, DEFAULT_TOKEN);
        let mut env = simulator_env(&self.aap.base_url(), &token_file, &self.namespace);
        env.extend(
            [
                ("CLOUDKIT_AAP_STATUS_POLL_INTERVAL", "300ms".to_string()),
                // A restarted runner keeps its "pod name", as a container does.
                ("POD_NAME", format!("runner-{}", self.namespace)),
                ("CLOUDKIT_LOG", "info,cloudkit_runner=debug".into()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        for (k, v) in extra {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
        env
    }

    pub fn start_runner(&mut self, extra: Vec<(String, String)>) -> anyhow::Result<()> {
        let kubeconfig = self.cp.kubeconfig_path().to_path_buf();
        self.start_runner_as(&kubeconfig, extra)
    }

    /// Starts the runner with another identity (e.g. its ServiceAccount's kubeconfig).
    pub fn start_runner_as(
        &mut self,
        kubeconfig: &std::path::Path,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let env = self.runner_env(extra);
        let log = self
            .dir
            .path()
            .join(format!("runner-{}.log", self.namespace));
        self.runner = Some(RunnerProcess::start(kubeconfig, env, log)?);
        Ok(())
    }

    pub fn runner(&mut self) -> &mut RunnerProcess {
        self.runner.as_mut().expect("the runner was started")
    }

    pub fn runner_logs(&self) -> String {
        self.runner
            .as_ref()
            .map(RunnerProcess::logs)
            .unwrap_or_default()
    }

    pub fn instances(&self) -> Api<ComputeInstance> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn create(
        &self,
        name: &str,
        spec: ComputeInstanceSpec,
    ) -> anyhow::Result<ComputeInstance> {
        let ci = ComputeInstance::new(name, spec);
        Ok(self.instances().create(&PostParams::default(), &ci).await?)
    }

    pub async fn create_default(&self, name: &str) -> anyhow::Result<ComputeInstance> {
        self.create(
            name,
            ComputeInstanceSpec {
                template_id: "osac.templates.ocp_small".into(),
                ..Default::default()
            },
        )
        .await
    }

    /// Merge-patches the spec, as a user would.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
        let patch = serde_json::json!({ "spec": spec });
        self.instances()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        self.instances()
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// Waits until `check` holds for the instance (None = it is gone), or fails with the
    /// instance and the runner's log tail, so a failure says what happened.
    /// Waits until the runner has reconciled the instance's current spec
    /// (`status.observedGeneration` reached `metadata.generation`): the positive sign a
    /// test needs before it asserts that a spec change did nothing else.
    pub async fn wait_reconciled(
        &self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<ComputeInstance> {
        let generation = self.instances().get(name).await?.metadata.generation;
        let ci = self
            .wait_for(
                name,
                "status.observedGeneration reaches the spec's generation",
                timeout,
                |ci| ci.and_then(|c| c.status.as_ref()?.observed_generation) >= generation,
            )
            .await?;
        ci.ok_or_else(|| anyhow::anyhow!("{name} is gone while waiting for its reconcile"))
    }

    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&ComputeInstance>) -> bool,
    ) -> anyhow::Result<Option<ComputeInstance>> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.instances().get_opt(name).await?;
            if check(current.as_ref()) {
                return Ok(current);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "timed out after {timeout:?} waiting for {name}: {what}\ninstance: {}\n{}",
                    serde_json::to_string_pretty(&current).unwrap_or_default(),
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `probe` finds something (`Some`), or fails naming `what` with the
    /// runner's log tail.
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe().await? {
                return Ok(found);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The runner's (and the rulebook's) last log lines, for a failure message.
    fn diagnostics(&self) -> String {
        let logs = self.runner_logs();
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        let rulebook = self
            .rulebook
            .as_ref()
            .map(|r| format!("\n{}", r.log_tail(40)))
            .unwrap_or_default();
        format!("runner log (newest first):\n{}{rulebook}", tail.join("\n"))
    }

    /// Creates an instance of `tenant` (annotation `cloudkit.openshift.io/tenant`) with the
    /// default spec.
    pub async fn create_for_tenant(
        &self,
        name: &str,
        tenant: &str,
    ) -> anyhow::Result<ComputeInstance> {
        let mut ci = ComputeInstance::new(
            name,
            ComputeInstanceSpec {
                template_id: "osac.templates.ocp_small".into(),
                ..Default::default()
            },
        );
        ci.annotations_mut()
            .insert(TENANT_ANNOTATION.into(), tenant.into());
        Ok(self.instances().create(&PostParams::default(), &ci).await?)
    }

    /// The Tenant objects of this bed's instances.
    pub fn tenants(&self) -> Api<Tenant> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Tenant object and namespace of `tenant` for this bed's instances.
    pub fn tenant_names(&self, tenant: &str) -> TenantNames {
        TenantNames::of(&self.namespace, tenant)
    }

    /// The namespaces of this bed (its own and its tenants') holding a VM labelled for
    /// instance `name`.
    pub async fn vm_namespaces(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &vm_resource());
        let lp = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
        Ok(api
            .list(&lp)
            .await?
            .items
            .iter()
            .filter_map(|vm| vm.namespace())
            .filter(|ns| serves_namespace(&self.namespace, ns))
            .collect())
    }

    /// The UID of the VMI `name` in `namespace`, if one exists.
    pub async fn vmi_uid_in(&self, namespace: &str, name: &str) -> anyhow::Result<Option<String>> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &vmi_resource());
        Ok(api.get_opt(name).await?.and_then(|v| v.uid()))
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The runner's settings against the test bed's AAP simulator at `aap_url`, watching
/// `namespace` (where its Lease lives too), with deadlines short enough for tests. Callers
/// add the poll interval, the pod name and the log level.
pub fn simulator_env(aap_url: &str, token_file: &Path, namespace: &str) -> Vec<(String, String)> {
    [
        ("CLOUDKIT_PROVISIONING_PROVIDER", "aap".to_string()),
        ("CLOUDKIT_AAP_URL", aap_url.to_string()),
        ("CLOUDKIT_AAP_TOKEN_FILE", token_file.display().to_string()),
        ("CLOUDKIT_AAP_PROVISION_TEMPLATE", PROVISION_TEMPLATE.into()),
        (
            "CLOUDKIT_AAP_DEPROVISION_TEMPLATE",
            DEPROVISION_TEMPLATE.into(),
        ),
        ("CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE", namespace.to_string()),
        ("CLOUDKIT_RETRY_BASE", "1s".into()),
        ("CLOUDKIT_RETRY_MAX", "4s".into()),
        ("CLOUDKIT_CANCEL_DEADLINE", "10s".into()),
        ("CLOUDKIT_RESTART_DEADLINE", "20s".into()),
        ("CLOUDKIT_HTTP_TIMEOUT", "5s".into()),
        ("CLOUDKIT_METRICS_ADDR", "127.0.0.1:0".into()),
        // One APIService per cluster: only a bed with a control plane of its own serves
        // the job-logs API (tests/src/logs_api.rs).
        ("CLOUDKIT_LOGS_ADDR", "off".into()),
        ("CLOUDKIT_LEASE_NAMESPACE", namespace.to_string()),
        ("CLOUDKIT_LEASE_DURATION", "4s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
