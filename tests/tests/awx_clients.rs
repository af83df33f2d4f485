//! Real AWX clients against the AAP simulator: the awx.awx collection's modules in
//! ansible-playbook, awxkit's SDK and `awx` CLI, and ansible-rulebook's own controller
//! client (`run_job_template`). Where one of them and the simulator disagree, the
//! simulator is wrong. Each test starts its own simulator; the clients come from the
//! pinned Ansible environment (installed on first use).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use cloudkit_testbed::aap_sim::*;
use cloudkit_testbed::ansible_env::{self, AnsibleEnv};
use cloudkit_testbed::wait::ANSIBLE as WAIT;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

/// Bound on one client run; they take seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
const PROVISION: u64 = 7;
const OTHER_PROVISION: u64 = 30;
const HELD: u64 = 31;

fn quick() -> JobBehavior {
    JobBehavior::uniform(Duration::from_millis(20))
}

/// Same-named templates in two organizations (only the organization tells them apart)
/// and one whose jobs run until canceled.
fn config() -> AapSimConfig {
    AapSimConfig::new()
        .template(TemplateConfig::job(PROVISION, "cloudkit provision").behavior(quick()))
        .template(
            TemplateConfig::job(OTHER_PROVISION, "cloudkit provision")
                .organization("Other")
                .behavior(quick()),
        )
        .template(
            TemplateConfig::job(HELD, "held")
                .organization("Other")
                .behavior(quick().hold_running()),
        )
}

/// The pinned clients and a scratch directory (Ansible home, files) for one test.
struct Clients {
    env: AnsibleEnv,
    dir: TempDir,
}

impl Clients {
    async fn new() -> Self {
        let env = tokio::task::spawn_blocking(ansible_env::ensure)
            .await
            .expect("the Ansible environment task panicked")
            .expect("the pinned Ansible environment");
        let dir = tempfile::Builder::new()
            .prefix("cloudkit-awx-clients-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("ansible-home")).unwrap();
        Self { env, dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.env.envs(&self.dir.path().join("ansible-home")))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs to the end within [`RUN_TIMEOUT`]; the output as one text for messages.
    async fn run(&self, mut command: Command) -> (Output, String) {
        let what = format!("{:?}", command.as_std());
        let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish in {RUN_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let text = format!(
            "{what}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output, text)
    }
}

const COLLECTION_PLAYBOOK: &str = r#"
- name: awx.awx against the AAP simulator
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Launch by name in an organization
      awx.awx.job_launch:
        name: cloudkit provision
        organization: Other
        extra_vars:
          cloudkit_marker: from-awx-collection
      register: launched

    - name: Wait for it
      awx.awx.job_wait:
        job_id: "{{ launched.id }}"
        timeout: 60
        interval: 0.2
      register: waited

    - name: List it
      awx.awx.job_list:
        query:
          id: "{{ launched.id }}"
      register: listed

    - name: Launch one that runs until canceled
      awx.awx.job_launch:
        name: held
        organization: Other
      register: held

    - name: Cancel it
      awx.awx.job_cancel:
        job_id: "{{ held.id }}"
      register: canceled

    - name: Wait for the canceled job
      awx.awx.job_wait:
        job_id: "{{ held.id }}"
        timeout: 60
        interval: 0.2
      register: waited_canceled
      ignore_errors: true

    - name: Check what the modules saw
      ansible.builtin.assert:
        that:
          - waited.status == 'successful'
          - listed.count == 1
          - listed.results[0].id == launched.id
          - canceled.changed
          - waited_canceled.failed
          - waited_canceled.msg == 'Job with id ' ~ held.id ~ ' failed'

    - name: Report the ids
      ansible.builtin.debug:
        msg: "launched={{ launched.id }} held={{ held.id }}"
"#;

#[tokio::test]
async fn awx_collection_launches_in_an_organization_waits_lists_and_cancels() {
    let sim = AapSimulator::start(config()).await.unwrap();
    let clients = Clients::new().await;
    let playbook = clients.write("collection.yml", COLLECTION_PLAYBOOK);
    let mut command = clients.command(&clients.env.ansible_playbook);
    command
        .args(["-i", "localhost,", "-c", "local", "-e"])
        .arg(format!(
            "ansible_python_interpreter={}",
            clients.env.python.display()
        ))
        .arg(&playbook)
        .env("CONTROLLER_HOST", sim.origin())
        .env("CONTROLLER_OAUTH_TOKEN", DEFAULT_TOKEN)
        .env("CONTROLLER_VERIFY_SSL", "false")
        // The AAP gateway's path; the simulator's links use it too.
        .env(
            "CONTROLLER_OPTIONAL_API_URLPATTERN_PREFIX",
            "/api/controller/",
        );
    let (output, log) = clients.run(command).await;
    assert!(output.status.success(), "{log}");
    // The collection compares the answers' product headers with its own version.
    assert!(!log.contains("[WARNING]"), "{log}");

    let launched = sim.jobs_of_template(OTHER_PROVISION);
    assert_eq!(launched.len(), 1, "{log}");
    let job = &launched[0];
    assert_eq!(job.status, JobStatus::Successful);
    assert_eq!(job.extra_vars["cloudkit_marker"], "from-awx-collection");
    assert!(log.contains(&format!("launched={}", job.id)), "{log}");
    assert!(
        sim.jobs_of_template(PROVISION).is_empty(),
        "the organization chose the template"
    );

    let held = sim.jobs_of_template(HELD);
    assert_eq!(held.len(), 1, "{log}");
    assert_eq!(held[0].status, JobStatus::Canceled);
    assert!(held[0].cancel_requested_at.is_some());
    assert!(log.contains(&format!("held={}", held[0].id)), "{log}");
}

const SDK_SCRIPT: &str = r#"
import json, os, sys
from awxkit import api, config
from awxkit.utils import PseudoNamespace

config.base_url = os.environ["AAP_ORIGIN"]
config.credentials = PseudoNamespace({"default": {"username": "", "password": ""}})
root = api.Api()
root.connection.login(None, None, token=os.environ["AAP_TOKEN"])
v2 = root.get().current_version.get()
templates = v2.job_templates.get(name="cloudkit provision", organization__name="Other")
assert templates.count == 1, templates.count
job = templates.results[0].launch({"extra_vars": json.dumps({"cloudkit_marker": "from-awxkit"})})
job = job.wait_until_completed(interval=0.2, timeout=60)
print(json.dumps({"id": job.id, "status": job.status, "template": templates.results[0].id}))
"#;

#[tokio::test]
async fn awxkit_sdk_launches_and_waits_and_the_cli_lists_and_launches() {
    let sim = AapSimulator::start(config()).await.unwrap();
    let clients = Clients::new().await;
    let script = clients.write("sdk.py", SDK_SCRIPT);
    let mut command = clients.command(&clients.env.python);
    command
        .arg(&script)
        .env("AAP_ORIGIN", sim.origin())
        .env("AAP_TOKEN", DEFAULT_TOKEN)
        .env("AWXKIT_API_BASE_PATH", "/api/controller/");
    let (output, log) = clients.run(command).await;
    assert!(output.status.success(), "{log}");
    let line = String::from_utf8_lossy(&output.stdout);
    let reported: Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(reported["status"], "successful", "{log}");
    assert_eq!(reported["template"], OTHER_PROVISION);
    let id = reported["id"].as_u64().unwrap();
    let job = sim.job(id).unwrap();
    assert_eq!(job.template_id, OTHER_PROVISION);
    assert_eq!(job.extra_vars["cloudkit_marker"], "from-awxkit");

    let awx = |args: &[&str]| {
        let mut command = clients.command(&clients.env.awx);
        command
            .args(["--conf.host", &sim.origin(), "--conf.token", DEFAULT_TOKEN])
            .args(["-f", "json"])
            .args(args)
            .env("AWXKIT_API_BASE_PATH", "/api/controller/");
        command
    };
    let (output, log) = clients
        .run(awx(&["job_templates", "list", "--name", "held"]))
        .await;
    assert!(output.status.success(), "{log}");
    let listed: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(listed["count"], 1, "{log}");
    assert_eq!(listed["results"][0]["id"], HELD);

    let vars = json!({ "cloudkit_marker": "from-awx-cli" }).to_string();
    let (output, log) = clients
        .run(awx(&[
            "job_templates",
            "launch",
            &PROVISION.to_string(),
            "--extra_vars",
            &vars,
        ]))
        .await;
    assert!(output.status.success(), "{log}");
    let launched: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {log}"));
    let id = launched["job"].as_u64().unwrap_or_else(|| panic!("{log}"));
    let job = sim.wait_for_terminal(id, WAIT).await.unwrap();
    assert_eq!(job.template_id, PROVISION);
    assert_eq!(job.extra_vars["cloudkit_marker"], "from-awx-cli");

    let (output, log) = clients.run(awx(&["jobs", "get", &id.to_string()])).await;
    assert!(output.status.success(), "{log}");
    let got: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(got["status"], "successful", "{log}");
}

/// One event from the generic source; the source stays up (the test stops the rulebook
/// once the job is done).
const RULEBOOK: &str = r#"
- name: run_job_template against the AAP simulator
  hosts: all
  sources:
    - eda.builtin.generic:
        payload:
          - cloudkit_marker: from-rulebook
        shutdown_after: 600
  rules:
    - name: Launch the provision template
      condition: event.cloudkit_marker == "from-rulebook"
      action:
        run_job_template:
          name: cloudkit provision
          organization: Default
          job_args:
            extra_vars:
              cloudkit_source: rulebook
"#;

#[tokio::test]
async fn ansible_rulebook_runs_a_job_template_and_sees_it_finish() {
    let sim = AapSimulator::start(config()).await.unwrap();
    let clients = Clients::new().await;
    ansible_env::require_java().expect("Java for ansible-rulebook");
    let rulebook = clients.write("rulebook.yml", RULEBOOK);
    let inventory = clients.write("inventory.yml", "all:\n  hosts:\n    localhost:\n");
    let log_path = clients.dir.path().join("rulebook.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut command = clients.command(&clients.env.ansible_rulebook);
    command
        .arg("--rulebook")
        .arg(&rulebook)
        .arg("--inventory")
        .arg(&inventory)
        .args(["--controller-url", &sim.base_url()])
        .args(["--controller-token", DEFAULT_TOKEN])
        .arg("-v")
        .env("PYTHONUNBUFFERED", "1")
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let mut child = command.spawn().expect("ansible-rulebook");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let job = sim
        .wait_until(WAIT, || sim.jobs_of_template(PROVISION).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no launch; rulebook log:\n{}", read_log()));
    let done = format!("completed successfully (job_id: {})", job.id);
    let finished = tokio::time::timeout(WAIT, async {
        loop {
            if read_log().contains(&done) {
                return true;
            }
            if child.try_wait().ok().flatten().is_some() {
                return read_log().contains(&done);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    let log = read_log();
    assert!(
        finished,
        "the rulebook never saw job {} finish:\n{log}",
        job.id
    );

    let job = sim.job(job.id).unwrap();
    assert_eq!(job.status, JobStatus::Successful);
    assert_eq!(job.extra_vars["cloudkit_source"], "rulebook");
    assert_eq!(
        job.extra_vars["ansible_eda"]["event"]["cloudkit_marker"],
        "from-rulebook"
    );
    let requests = sim.requests();
    let asked = |path: &str| requests.iter().any(|r| r.path.ends_with(path));
    assert!(asked("/v2/config/"), "{requests:#?}");
    assert!(asked("/v2/unified_job_templates/"), "{requests:#?}");
    assert!(
        requests.iter().any(|r| r.endpoint == Endpoint::JobList
            && r.query.as_deref().is_some_and(|q| q.contains("id__in"))),
        "polled with id__in: {requests:#?}"
    );
}
