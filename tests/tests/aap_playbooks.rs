//! Real playbooks behind the AAP simulator: a launched job runs `ansible-playbook` from
//! the pinned Ansible environment with the launch's extra_vars; its exit status is the
//! job's status, its output the job's stdout, and a cancel stops it.

use std::time::Duration;

use cloudkit_testbed::aap_sim::*;
use cloudkit_testbed::ansible_env;
use cloudkit_testbed::wait::ANSIBLE as WAIT;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

const GREET: u64 = 7;
const FAIL: u64 = 8;
const SLEEP: u64 = 9;
/// Part of the sleeping task's command line, to find its process.
const SLEEP_MARKER: &str = "3600.4242";

const GREET_PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Greet
      ansible.builtin.debug:
        msg: "hello {{ who }}"
"#;

const FAIL_PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail
      ansible.builtin.fail:
        msg: "refused {{ who }}"
"#;

const SLEEP_PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep SLEEP_MARKER
"#;

async fn start() -> (AapSimulator, TempDir) {
    let env = tokio::task::spawn_blocking(ansible_env::ensure)
        .await
        .unwrap()
        .expect("the pinned Ansible environment");
    let dir = tempfile::Builder::new()
        .prefix("aap-playbooks-")
        .tempdir()
        .unwrap();
    let home = dir.path().join("ansible-home");
    std::fs::create_dir_all(&home).unwrap();
    let template = |id: u64, name: &str, text: &str| {
        let file = dir.path().join(format!("{name}.yml"));
        std::fs::write(&file, text.replace("SLEEP_MARKER", SLEEP_MARKER)).unwrap();
        let mut run = PlaybookRun::new(&env.ansible_playbook, dir.path())
            .arg("-i")
            .arg("localhost,")
            .arg("-c")
            .arg("local")
            .arg("-e")
            .arg(format!(
                "ansible_python_interpreter={}",
                env.python.display()
            ))
            // Colours on: the simulator must strip them as AWX's format=txt does.
            .env("ANSIBLE_FORCE_COLOR", "1");
        for (key, value) in env.envs(&home) {
            if key != "ANSIBLE_FORCE_COLOR" && key != "ANSIBLE_NOCOLOR" {
                run = run.env(key, value);
            }
        }
        TemplateConfig::job(id, name)
            .behavior(JobBehavior::uniform(Duration::from_millis(10)))
            .playbook(run.arg(file))
    };
    let sim = AapSimulator::start(
        AapSimConfig::new()
            .template(template(GREET, "greet", GREET_PLAYBOOK))
            .template(template(FAIL, "fail", FAIL_PLAYBOOK))
            .template(template(SLEEP, "sleep", SLEEP_PLAYBOOK)),
    )
    .await
    .unwrap();
    (sim, dir)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(sim: &AapSimulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.api_url(),
        }
    }

    async fn launch(&self, template: u64, extra_vars: Value) -> u64 {
        let r = self
            .http
            .post(format!("{}job_templates/{template}/launch/", self.base))
            .bearer_auth(DEFAULT_TOKEN)
            .json(&json!({ "extra_vars": extra_vars }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["job"].as_u64().unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap()
    }
}

fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(cmdline);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_playbook_decides_the_status_and_writes_the_stdout() {
    let (sim, _dir) = start().await;
    let api = Api::new(&sim);

    let ok = api.launch(GREET, json!({ "who": "cloudkit" })).await;
    let job = sim.wait_for_terminal(ok, WAIT).await.unwrap();
    let r = api.get(&format!("jobs/{ok}/stdout/?format=txt")).await;
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    let text = r.text().await.unwrap();
    assert_eq!(job.status, JobStatus::Successful, "{text}");
    assert!(text.contains("hello cloudkit"), "{text}");
    assert!(text.contains("PLAY RECAP"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI codes left: {text:?}");
    let r = api
        .get(&format!("jobs/{ok}/stdout/?format=txt_download"))
        .await;
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"job_{ok}.txt\"").as_str()
    );
    assert_eq!(r.text().await.unwrap(), text);

    let failed = api.launch(FAIL, json!({ "who": "nobody" })).await;
    let job = sim.wait_for_terminal(failed, WAIT).await.unwrap();
    let text = api
        .get(&format!("jobs/{failed}/stdout/?format=txt"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{text}");
    assert!(text.contains("refused nobody"), "{text}");
    let detail: Value = api
        .get(&format!("jobs/{failed}/"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["failed"], true);
    assert_eq!(
        detail["job_explanation"], "",
        "AWX leaves it empty for playbook failures"
    );
}

#[tokio::test]
async fn a_cancel_stops_the_playbook_and_its_tasks() {
    let (sim, _dir) = start().await;
    let api = Api::new(&sim);
    let id = api.launch(SLEEP, json!({})).await;
    // The task's process shows up some time after the playbook printed its name.
    let started = tokio::time::timeout(WAIT, async {
        while processes_with(SLEEP_MARKER).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let stdout = sim.job(id).map(|j| j.status);
    assert!(
        started.is_ok(),
        "the sleep task never started (job {stdout:?})"
    );
    assert_eq!(sim.job(id).unwrap().status, JobStatus::Running);

    let r = api
        .http
        .post(format!("{}jobs/{id}/cancel/", api.base))
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = sim.wait_for_terminal(id, WAIT).await.unwrap();
    assert_eq!(job.status, JobStatus::Canceled);
    // A killed process can linger a moment on a loaded machine; one that survives is a
    // leak, and fails below.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !processes_with(SLEEP_MARKER).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(processes_with(SLEEP_MARKER), Vec::<String>::new());
}
