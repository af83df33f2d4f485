//! What a test configures: templates, tokens, job behaviour.

use std::time::Duration;

use serde::Serialize;

/// The token [`AapSimConfig::default`] accepts, with full access.
pub const DEFAULT_TOKEN: &str = "aap-sim-token";

/// A phase duration that never ends by itself: the job stays in that phase until a test
/// changes the behaviour (or cancels the job).
pub const FOREVER: Duration = Duration::MAX;

/// Job template or workflow job template; job or workflow job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Job,
    Workflow,
}

/// What a template's playbook does to the cluster when it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Provision,
    Deprovision,
}

/// What a credential may do: a read-only one may look, not launch or cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// How a job that runs to its end finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Successful,
    Failed,
    Error,
}

/// How long a job spends in each phase and how it ends. Read again at every step, so a
/// test may change it while a job runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobBehavior {
    /// Time in `new`. AWX moves an API launch to `pending` before answering, so with the
    /// default zero the launch response says `pending`.
    pub new: Duration,
    pub pending: Duration,
    pub waiting: Duration,
    pub running: Duration,
    pub outcome: Outcome,
    /// How long a `running` job keeps running after an API cancel.
    pub cancel_delay: Duration,
    /// Set on `failed` / `error` (AWX leaves it empty for playbook failures).
    pub job_explanation: String,
    /// Set on `error`.
    pub result_traceback: String,
    /// Extra stdout, appended while the job runs (e.g. to make it large).
    pub stdout: String,
    /// A task that fails (the job ends `failed`, the playbook's effects are not applied).
    pub failing_task: Option<FailingTask>,
}

/// A task failing on a host with a module message, as `runner_on_failed` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingTask {
    pub task: String,
    pub host: String,
    pub msg: String,
}

impl FailingTask {
    pub fn new(task: impl Into<String>, host: impl Into<String>, msg: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            host: host.into(),
            msg: msg.into(),
        }
    }
}

impl Default for JobBehavior {
    fn default() -> Self {
        Self {
            new: Duration::ZERO,
            pending: Duration::from_millis(20),
            waiting: Duration::from_millis(20),
            running: Duration::from_millis(100),
            outcome: Outcome::Successful,
            cancel_delay: Duration::from_millis(100),
            job_explanation: String::new(),
            result_traceback: String::new(),
            stdout: String::new(),
            failing_task: None,
        }
    }
}

impl JobBehavior {
    /// Every phase `d` long, successful.
    pub fn uniform(d: Duration) -> Self {
        Self {
            pending: d,
            waiting: d,
            running: d,
            ..Self::default()
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn running(mut self, d: Duration) -> Self {
        self.running = d;
        self
    }

    /// Stay `running` until the behaviour changes or the job is canceled.
    pub fn hold_running(self) -> Self {
        self.running(FOREVER)
    }

    pub fn cancel_delay(mut self, d: Duration) -> Self {
        self.cancel_delay = d;
        self
    }

    pub fn explanation(mut self, text: impl Into<String>) -> Self {
        self.job_explanation = text.into();
        self
    }

    pub(crate) fn phase(&self, status: super::jobs::JobStatus) -> Option<Duration> {
        use super::jobs::JobStatus as S;
        match status {
            S::New => Some(self.new),
            S::Pending => Some(self.pending),
            S::Waiting => Some(self.waiting),
            S::Running => Some(self.running),
            _ => None,
        }
    }
}

/// A job template or workflow job template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateConfig {
    /// Unique across both kinds (AWX's unified job templates share one id space).
    pub id: u64,
    pub name: String,
    pub kind: JobKind,
    pub organization: String,
    pub description: String,
    pub role: Option<Role>,
    pub ask_variables_on_launch: bool,
    /// Required survey variables: a launch without them answers 400.
    pub variables_needed_to_start: Vec<String>,
    /// Credential passwords a launch must pass as top-level fields, else 400.
    pub passwords_needed_to_start: Vec<String>,
    /// Messages for missing resources (e.g. no inventory): a non-empty list makes every
    /// launch answer 400.
    pub resources_needed_to_start: Vec<String>,
    pub behavior: JobBehavior,
    /// A real playbook run in `running` instead of the simulated one: its exit status
    /// decides the outcome, `behavior.running` and the simulated effects are unused.
    pub playbook: Option<super::playbook::PlaybookRun>,
    /// A workflow job template's one node: the job template whose job it runs (that job
    /// gets the events and output, and fails when the workflow fails). Without one, a
    /// workflow job has no nodes.
    pub node_template: Option<u64>,
}

impl TemplateConfig {
    pub fn job(id: u64, name: impl Into<String>) -> Self {
        Self::new(id, name, JobKind::Job)
    }

    pub fn workflow(id: u64, name: impl Into<String>) -> Self {
        Self::new(id, name, JobKind::Workflow)
    }

    fn new(id: u64, name: impl Into<String>, kind: JobKind) -> Self {
        Self {
            id,
            name: name.into(),
            kind,
            organization: "Default".to_owned(),
            description: String::new(),
            role: None,
            ask_variables_on_launch: true,
            variables_needed_to_start: Vec::new(),
            passwords_needed_to_start: Vec::new(),
            resources_needed_to_start: Vec::new(),
            behavior: JobBehavior::default(),
            playbook: None,
            node_template: None,
        }
    }

    pub fn playbook(mut self, run: super::playbook::PlaybookRun) -> Self {
        self.playbook = Some(run);
        self
    }

    pub fn node_template(mut self, job_template: u64) -> Self {
        self.node_template = Some(job_template);
        self
    }

    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = org.into();
        self
    }

    pub fn ask_variables_on_launch(mut self, ask: bool) -> Self {
        self.ask_variables_on_launch = ask;
        self
    }

    pub fn needs_variables(mut self, names: &[&str]) -> Self {
        self.variables_needed_to_start = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn needs_passwords(mut self, names: &[&str]) -> Self {
        self.passwords_needed_to_start = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn needs_resources(mut self, messages: &[&str]) -> Self {
        self.resources_needed_to_start = messages.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    pub fn behavior(mut self, behavior: JobBehavior) -> Self {
        self.behavior = behavior;
        self
    }
}

/// Everything [`super::AapSimulator::start`] needs.
#[derive(Clone)]
pub struct AapSimConfig {
    /// `/api/controller` (AAP gateway, the default) or `/api` (AWX). Both `/api/v2/` and
    /// `/api/controller/v2/` are always served; URLs in responses use this prefix.
    pub api_prefix: String,
    pub tokens: Vec<(String, Access)>,
    /// Basic-auth users: (user, password, access).
    pub users: Vec<(String, String, Access)>,
    pub templates: Vec<TemplateConfig>,
    /// The cluster the playbooks act on; without one, effects are skipped (and recorded
    /// as skipped).
    pub kube: Option<kube::Client>,
    /// Whether the playbooks also add (provision) and remove (deprovision) the finalizer
    /// `cloudkit.openshift.io/computeinstance-aap`, as the upstream templates do for
    /// EDA. Off by default: with it, a ComputeInstance whose deprovision never succeeds
    /// stays Terminating.
    pub aap_finalizer: bool,
    /// Seed of the RNG behind fault rates.
    pub seed: u64,
    /// The first job id; jobs and workflow jobs share one sequence, as in AWX.
    pub first_job_id: u64,
}

impl Default for AapSimConfig {
    fn default() -> Self {
        Self {
            api_prefix: "/api/controller".to_owned(),
            tokens: vec![(DEFAULT_TOKEN.to_owned(), Access::ReadWrite)],
            users: Vec::new(),
            templates: Vec::new(),
            kube: None,
            aap_finalizer: false,
            seed: 0x5eed,
            // Far from template ids, so mixing up a template id and a job id shows.
            first_job_id: 101,
        }
    }
}

impl std::fmt::Debug for AapSimConfig {
    // Tokens and passwords stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AapSimConfig")
            .field("api_prefix", &self.api_prefix)
            .field("tokens", &self.tokens.len())
            .field("users", &self.users.len())
            .field("templates", &self.templates)
            .field("kube", &self.kube.is_some())
            .field("aap_finalizer", &self.aap_finalizer)
            .field("seed", &self.seed)
            .field("first_job_id", &self.first_job_id)
            .finish()
    }
}

impl AapSimConfig {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn api_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.api_prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    pub fn token(mut self, token: impl Into<String>, access: Access) -> Self {
        self.tokens.push((token.into(), access));
        self
    }

    pub fn user(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
        access: Access,
    ) -> Self {
        self.users.push((user.into(), password.into(), access));
        self
    }

    pub fn template(mut self, template: TemplateConfig) -> Self {
        self.templates.push(template);
        self
    }

    pub fn kube(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    pub fn aap_finalizer(mut self, manage: bool) -> Self {
        self.aap_finalizer = manage;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn first_job_id(mut self, id: u64) -> Self {
        self.first_job_id = id;
        self
    }
}
