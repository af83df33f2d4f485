//! The AAP simulator against docs/providers.md, fact by fact, over HTTP (no Kubernetes).

use std::time::{Duration, Instant};

use cloudkit_testbed::aap_sim::*;
use cloudkit_testbed::wait::SIMULATOR as WAIT;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::{Value, json};

const PROVISION: u64 = 7;
const DEPROVISION: u64 = 8;
const WORKFLOW: u64 = 9;
const UNPROMPTED: u64 = 10;

fn quick() -> JobBehavior {
    JobBehavior::uniform(Duration::from_millis(5))
}

fn config() -> AapSimConfig {
    AapSimConfig::new()
        .template(
            TemplateConfig::job(PROVISION, "cloudkit provision")
                .role(Role::Provision)
                .behavior(quick()),
        )
        .template(
            TemplateConfig::job(DEPROVISION, "cloudkit deprovision")
                .role(Role::Deprovision)
                .behavior(quick()),
        )
        .template(TemplateConfig::workflow(WORKFLOW, "cloudkit provision").behavior(quick()))
        .template(
            TemplateConfig::job(UNPROMPTED, "unprompted")
                .ask_variables_on_launch(false)
                .behavior(quick()),
        )
}

/// The launch body the runner sends: the resource as the EDA event payload.
fn vars(namespace: &str, name: &str) -> Value {
    json!({ "ansible_eda": { "event": { "payload": {
        "apiVersion": "cloudkit.openshift.io/v1alpha1",
        "kind": "ComputeInstance",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "templateID": "small" },
        "status": { "desiredConfigVersion": "abc123" }
    } } } })
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

struct Api {
    http: reqwest::Client,
    origin: String,
    api: String,
    token: Option<String>,
}

impl Api {
    fn new(sim: &AapSimulator) -> Self {
        Self::with_token(sim, Some(DEFAULT_TOKEN))
    }

    fn with_token(sim: &AapSimulator, token: Option<&str>) -> Self {
        Self {
            // Redirects are asserted, not followed.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: sim.origin(),
            api: sim.api_url(),
            token: token.map(str::to_owned),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}", self.api)
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.expect("request");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn request(&self, method: reqwest::Method, path: &str) -> Reply {
        self.send(self.http.request(method, self.url(path))).await
    }

    async fn launch(&self, template: u64, extra_vars: Value) -> u64 {
        let reply = self
            .post(
                &format!("job_templates/{template}/launch/"),
                &json!({ "extra_vars": extra_vars }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json()["job"].as_u64().unwrap()
    }
}

async fn start(config: AapSimConfig) -> (AapSimulator, Api) {
    let sim = AapSimulator::start(config).await.unwrap();
    let api = Api::new(&sim);
    (sim, api)
}

fn is_awx_timestamp(value: &Value) -> bool {
    // 2026-11-22T00:13:15.123456Z
    value.as_str().is_some_and(|s| {
        s.len() == 27
            && s.ends_with('Z')
            && s.as_bytes()[19] == b'.'
            && s.parse::<k8s_openapi::jiff::Timestamp>().is_ok()
    })
}

// ---- launch --------------------------------------------------------------------------

#[tokio::test]
async fn launch_answers_201_with_location_and_pending() {
    let (sim, api) = start(config()).await;
    assert!(sim.base_url().ends_with("/api/controller"));
    let reply = api
        .post(
            "job_templates/7/launch/",
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    let id = body["job"].as_u64().unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["type"], "job");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["ignored_fields"], json!({}));
    assert_eq!(body["job_template"], PROVISION);
    let location = reply.headers[LOCATION].to_str().unwrap();
    assert_eq!(location, format!("/api/controller/v2/jobs/{id}/"));
    assert_eq!(body["url"], location);
    // The Location is a path: joined to the host it names the job.
    let job = api.get(location).await;
    assert_eq!(job.status, StatusCode::OK);
    assert_eq!(job.json()["id"], id);
}

#[tokio::test]
async fn awx_prefix_is_configurable_and_both_prefixes_are_served() {
    let (sim, api) = start(config().api_prefix("/api")).await;
    assert!(sim.base_url().ends_with("/api"));
    let reply = api
        .post("job_templates/7/launch/", &json!({ "extra_vars": {} }))
        .await;
    let id = reply.json()["job"].as_u64().unwrap();
    assert_eq!(
        reply.headers[LOCATION],
        format!("/api/v2/jobs/{id}/").as_str()
    );
    assert_eq!(
        api.get(&format!("/api/controller/v2/jobs/{id}/"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.get(&format!("/api/v2/jobs/{id}/")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn extra_vars_may_be_an_object_a_json_string_or_a_yaml_string_and_read_back_as_a_string() {
    let (sim, api) = start(config()).await;
    let object = vars("ns", "vm1");
    let forms = [
        object.clone(),
        json!(object.to_string()),
        json!(
            "ansible_eda:\n  event:\n    payload:\n      metadata: {name: vm1, namespace: ns}\n      status: {desiredConfigVersion: abc123}\n"
        ),
    ];
    for form in forms {
        let id = api.launch(PROVISION, form).await;
        let job = api.get(&format!("jobs/{id}/")).await.json();
        let text = job["extra_vars"]
            .as_str()
            .expect("extra_vars is a JSON string");
        let parsed: Value = serde_json::from_str(text).unwrap();
        let metadata = &parsed["ansible_eda"]["event"]["payload"]["metadata"];
        assert_eq!(metadata["name"], "vm1");
        assert_eq!(
            sim.job(id).unwrap().instance,
            Some(InstanceRef {
                namespace: "ns".into(),
                name: "vm1".into()
            })
        );
    }
    let bad = api
        .post(
            "job_templates/7/launch/",
            &json!({ "extra_vars": "[1, 2]" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["extra_vars"][0]
            .as_str()
            .unwrap()
            .contains("not a dictionary")
    );
}

#[tokio::test]
async fn job_template_without_prompt_ignores_extra_vars_but_still_answers_201() {
    let (sim, api) = start(config()).await;
    let submitted = vars("ns", "vm1");
    let reply = api
        .post(
            "job_templates/10/launch/",
            &json!({ "extra_vars": submitted, "limit": "all" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    assert_eq!(body["ignored_fields"]["extra_vars"], submitted);
    assert_eq!(body["ignored_fields"]["limit"], "all");
    assert_eq!(body["extra_vars"], "{}");
    let record = sim.job(body["job"].as_u64().unwrap()).unwrap();
    assert!(!record.vars_reached_playbook);
    assert!(record.extra_vars.is_empty());
    assert_eq!(Value::Object(record.submitted_extra_vars), submitted);
}

#[tokio::test]
async fn workflow_launch_is_201_and_refuses_unprompted_variables_with_400() {
    let (sim, api) =
        start(config().template(
            TemplateConfig::workflow(11, "strict workflow").ask_variables_on_launch(false),
        ))
        .await;
    let reply = api
        .post(
            "workflow_job_templates/11/launch/",
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({ "extra_vars": ["Variables ansible_eda are not allowed on launch. Check the Prompt on Launch setting on the Workflow Job Template to include Extra Variables."] })
    );
    assert!(sim.jobs().is_empty());

    let reply = api
        .post(
            "workflow_job_templates/9/launch/",
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    let id = body["workflow_job"].as_u64().unwrap();
    assert!(body.get("job").is_none());
    assert_eq!(body["type"], "workflow_job");
    assert_eq!(body["workflow_job_template"], WORKFLOW);
    assert_eq!(
        reply.headers[LOCATION],
        format!("/api/controller/v2/workflow_jobs/{id}/").as_str()
    );
}

#[tokio::test]
async fn templates_that_need_input_answer_400_with_field_lists() {
    let (sim, api) = start(
        config()
            .template(TemplateConfig::job(20, "survey").needs_variables(&["size"]))
            .template(TemplateConfig::job(21, "vault").needs_passwords(&["vault_password"]))
            .template(
                TemplateConfig::job(22, "no inventory")
                    .needs_resources(&["Job Template 'inventory' is missing or undefined."]),
            ),
    )
    .await;
    let r = api.post("job_templates/20/launch/", &json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({ "variables_needed_to_start": ["'size' value missing"] })
    );
    let r = api.post("job_templates/21/launch/", &json!({})).await;
    assert_eq!(
        r.json(),
        json!({ "passwords_needed_to_start": ["vault_password"] })
    );
    let r = api.post("job_templates/22/launch/", &json!({})).await;
    assert_eq!(
        r.json(),
        json!({ "resources_needed_to_start": ["Job Template 'inventory' is missing or undefined."] })
    );
    let ok = api
        .post(
            "job_templates/21/launch/",
            &json!({ "vault_password": "x" }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let ok = api
        .post(
            "job_templates/20/launch/",
            &json!({ "extra_vars": { "size": "s" } }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(sim.jobs().len(), 2);
}

#[tokio::test]
async fn launching_a_missing_template_or_by_name_is_404() {
    let (sim, api) = start(config()).await;
    let r = api.post("job_templates/999/launch/", &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({ "detail": "Not found." }));
    // A workflow template id is not a job template id.
    let r = api.post("job_templates/9/launch/", &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .post("job_templates/cloudkit%20provision/launch/", &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(sim.jobs().is_empty());
}

#[tokio::test]
async fn a_path_without_trailing_slash_is_redirected_and_a_post_loses_its_body() {
    let (sim, api) = start(config()).await;
    let r = api.get("job_templates/7/launch").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.headers[LOCATION],
        "/api/controller/v2/job_templates/7/launch/"
    );
    let r = api.get("jobs?id__in=1,2").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers[LOCATION], "/api/controller/v2/jobs/?id__in=1,2");

    let r = api
        .post(
            "job_templates/7/launch",
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert!(sim.jobs().is_empty(), "the 301 itself launches nothing");

    // A client that follows the redirect re-sends a POST as a GET, without the body.
    let following = reqwest::Client::new();
    let r = following
        .post(format!("{}job_templates/7/launch", sim.api_url()))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({ "extra_vars": vars("ns", "vm1") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert!(info.get("job").is_none());
    assert_eq!(info["ask_variables_on_launch"], true);
    assert!(sim.jobs().is_empty());
}

// ---- template lookup -----------------------------------------------------------------

#[tokio::test]
async fn templates_are_found_by_escaped_name_and_organization() {
    let (_sim, api) = start(
        config()
            .template(TemplateConfig::job(30, "a&b = c/d").organization("Other"))
            .template(TemplateConfig::job(31, "cloudkit provision").organization("Other")),
    )
    .await;
    let r = api.get("job_templates/?name=a%26b%20%3D%20c%2Fd").await;
    let body = r.json();
    assert_eq!(body["count"], 1);
    assert_eq!(body["next"], Value::Null);
    assert_eq!(body["previous"], Value::Null);
    let t = &body["results"][0];
    assert_eq!(t["id"], 30);
    assert_eq!(t["type"], "job_template");
    assert_eq!(t["name"], "a&b = c/d");
    assert_eq!(
        t["related"]["launch"],
        "/api/controller/v2/job_templates/30/launch/"
    );
    assert_eq!(t["summary_fields"]["organization"]["name"], "Other");
    assert_eq!(t["ask_variables_on_launch"], true);

    // Names are unique only within an organization.
    let r = api
        .get("job_templates/?name=cloudkit%20provision")
        .await
        .json();
    assert_eq!(r["count"], 2);
    let r = api
        .get("job_templates/?name=cloudkit+provision&organization__name=Default")
        .await
        .json();
    assert_eq!(r["count"], 1);
    assert_eq!(r["results"][0]["id"], PROVISION);

    let r = api.get("job_templates/?name=nope").await.json();
    assert_eq!(r["count"], 0);
    assert_eq!(r["results"], json!([]));

    let r = api
        .get("workflow_job_templates/?name=cloudkit%20provision")
        .await
        .json();
    assert_eq!(r["count"], 1);
    assert_eq!(r["results"][0]["type"], "workflow_job_template");
    assert_eq!(
        r["results"][0]["related"]["launch"],
        "/api/controller/v2/workflow_job_templates/9/launch/"
    );
}

#[tokio::test]
async fn template_lists_paginate() {
    let mut cfg = AapSimConfig::new();
    for i in 0..30 {
        cfg = cfg.template(TemplateConfig::job(100 + i, format!("t{i:02}")));
    }
    let (_sim, api) = start(cfg).await;
    let r = api.get("job_templates/").await.json();
    assert_eq!(r["count"], 30);
    assert_eq!(r["results"].as_array().unwrap().len(), 25);
    assert_eq!(r["next"], "/api/controller/v2/job_templates/?page=2");
    let r = api.get("job_templates/?page=2").await.json();
    assert_eq!(r["results"].as_array().unwrap().len(), 5);
    assert_eq!(r["next"], Value::Null);
    assert_eq!(r["previous"], "/api/controller/v2/job_templates/?page=1");
}

// ---- jobs: detail, list --------------------------------------------------------------

#[tokio::test]
async fn a_job_walks_new_pending_waiting_running_successful_with_awx_fields() {
    let (sim, api) = start(config()).await;
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["started"], Value::Null);
    assert_eq!(job["finished"], Value::Null);
    assert_eq!(job["canceled_on"], Value::Null);
    assert!(is_awx_timestamp(&job["created"]), "{}", job["created"]);
    assert_eq!(job["event_processing_finished"], false);

    let record = sim.wait_for_terminal(id, WAIT).await.unwrap();
    let statuses: Vec<JobStatus> = record.history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            JobStatus::New,
            JobStatus::Pending,
            JobStatus::Waiting,
            JobStatus::Running,
            JobStatus::Successful
        ]
    );
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["id"], id);
    assert_eq!(job["type"], "job");
    assert_eq!(job["url"], format!("/api/controller/v2/jobs/{id}/"));
    assert_eq!(job["name"], "cloudkit provision");
    assert_eq!(job["status"], "successful");
    assert_eq!(job["failed"], false);
    assert!(is_awx_timestamp(&job["started"]));
    assert!(is_awx_timestamp(&job["finished"]));
    assert!(job["elapsed"].is_f64());
    assert!(job["elapsed"].as_f64().unwrap() > 0.0);
    assert_eq!(job["job_explanation"], "");
    assert_eq!(job["result_traceback"], "");
    assert_eq!(job["event_processing_finished"], true);
    assert!(job["extra_vars"].is_string());
    assert_eq!(job["job_template"], PROVISION);
}

#[tokio::test]
async fn failed_is_true_for_failed_error_and_canceled() {
    let (sim, api) = start(config()).await;
    let mut cases = Vec::new();
    for (i, outcome) in [Outcome::Successful, Outcome::Failed, Outcome::Error]
        .into_iter()
        .enumerate()
    {
        let name = format!("vm{i}");
        sim.set_instance_behavior(
            "ns",
            &name,
            None,
            quick().outcome(outcome).explanation("boom"),
        );
        cases.push((api.launch(PROVISION, vars("ns", &name)).await, outcome));
    }
    for (id, outcome) in cases {
        sim.wait_for_terminal(id, WAIT).await.unwrap();
        let job = api.get(&format!("jobs/{id}/")).await.json();
        let (status, failed) = match outcome {
            Outcome::Successful => ("successful", false),
            Outcome::Failed => ("failed", true),
            Outcome::Error => ("error", true),
        };
        assert_eq!(job["status"], status);
        assert_eq!(job["failed"], failed);
        if failed {
            assert_eq!(job["job_explanation"], "boom");
        }
    }
    sim.set_template_behavior(PROVISION, JobBehavior::uniform(Duration::from_secs(60)));
    let id = api.launch(PROVISION, vars("ns", "other")).await;
    assert_eq!(
        api.post(&format!("jobs/{id}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["status"], "canceled");
    assert_eq!(job["failed"], true);
}

#[tokio::test]
async fn workflow_jobs_and_jobs_live_under_their_own_paths() {
    let (sim, api) = start(config()).await;
    let wf = api
        .post(
            "workflow_job_templates/9/launch/",
            &json!({ "extra_vars": {} }),
        )
        .await
        .json()["workflow_job"]
        .as_u64()
        .unwrap();
    let job = api.launch(PROVISION, json!({})).await;
    assert_eq!(
        api.get(&format!("jobs/{wf}/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("workflow_jobs/{job}/")).await.status,
        StatusCode::NOT_FOUND
    );
    sim.wait_for_terminal(wf, WAIT).await.unwrap();
    let detail = api.get(&format!("workflow_jobs/{wf}/")).await.json();
    assert_eq!(detail["type"], "workflow_job");
    assert_eq!(detail["workflow_job_template"], WORKFLOW);
    assert_eq!(detail["status"], "successful");
    assert!(detail["extra_vars"].is_string());
    // AWX's WorkflowJobSerializer has no event_processing_finished.
    assert!(detail.get("event_processing_finished").is_none());
    let list = api
        .get(&format!("workflow_jobs/?id__in={wf},{job}"))
        .await
        .json();
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], wf);
    let list = api.get(&format!("jobs/?id__in={wf},{job}")).await.json();
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], job);
    assert_eq!(
        api.get(&format!("workflow_jobs/{wf}/stdout/")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn job_list_by_id_in_paginates_with_relative_links_and_caps_page_size() {
    let (_sim, api) = start(config()).await;
    let mut ids = Vec::new();
    for _ in 0..205 {
        ids.push(api.launch(PROVISION, json!({})).await);
    }
    let some = format!("{},{},{}", ids[0], ids[5], ids[9]);
    let r = api
        .get(&format!("jobs/?id__in={some}&page_size=200"))
        .await
        .json();
    assert_eq!(r["count"], 3);
    assert_eq!(r["next"], Value::Null);
    let got: Vec<u64> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [ids[0], ids[5], ids[9]]);
    // List entries drop the heavy fields, as AWX's JobListSerializer does.
    let entry = &r["results"][0];
    assert!(entry.get("result_traceback").is_none());
    assert!(entry.get("event_processing_finished").is_none());
    assert!(entry["extra_vars"].is_string());

    let r = api.get("jobs/").await.json();
    assert_eq!(r["count"], 205);
    assert_eq!(r["results"].as_array().unwrap().len(), 25);
    assert_eq!(r["next"], "/api/controller/v2/jobs/?page=2");
    assert_eq!(r["previous"], Value::Null);

    let r = api.get("jobs/?page_size=1000").await.json();
    assert_eq!(r["results"].as_array().unwrap().len(), 200);
    assert_eq!(r["next"], "/api/controller/v2/jobs/?page=2&page_size=200");
    let next = r["next"].as_str().unwrap().to_owned();
    let r = api.get(&next).await.json();
    assert_eq!(r["results"].as_array().unwrap().len(), 5);
    assert_eq!(r["next"], Value::Null);
    assert_eq!(
        r["previous"],
        "/api/controller/v2/jobs/?page=1&page_size=200"
    );

    let all: Vec<String> = ids.iter().map(u64::to_string).collect();
    let r = api
        .get(&format!("jobs/?id__in={}&page_size=200", all.join(",")))
        .await
        .json();
    assert_eq!(r["count"], 205);
    let next = r["next"].as_str().unwrap();
    assert!(
        next.starts_with("/api/controller/v2/jobs/?id__in="),
        "{next}"
    );
    assert!(next.ends_with("&page=2&page_size=200"), "{next}");

    assert_eq!(api.get("jobs/?page=99").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn job_list_filters_like_awx() {
    let (sim, api) = start(config()).await;
    let first = api.launch(PROVISION, json!({})).await;
    sim.wait_for_terminal(first, WAIT).await.unwrap();
    let created = api.get(&format!("jobs/{first}/")).await.json()["created"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.set_template_behavior(DEPROVISION, JobBehavior::default().hold_running());
    let second = api.launch(DEPROVISION, json!({})).await;
    let third = api.launch(PROVISION, json!({})).await;

    let ids = |r: Value| -> Vec<u64> {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(api
            .get(&format!("jobs/?job_template={DEPROVISION}"))
            .await
            .json()),
        [second]
    );
    assert_eq!(
        ids(api.get("jobs/?order_by=-created").await.json()),
        [third, second, first]
    );
    let active = ids(api
        .get("jobs/?status__in=new,pending,waiting,running&order_by=id")
        .await
        .json());
    assert!(
        active.contains(&second) && !active.contains(&first),
        "{active:?}"
    );
    assert_eq!(
        ids(api
            .get(&format!("jobs/?created__gt={created}"))
            .await
            .json()),
        [second, third]
    );
    assert_eq!(
        ids(api
            .get(&format!("jobs/?created__gte={created}&not__id={third}"))
            .await
            .json()),
        [first, second]
    );
    let r = api.get("jobs/?no_such_field=1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["detail"].is_string());
    assert_eq!(
        api.get("jobs/?id__in=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    // extra_vars is `prevent_search` in AWX: a launch cannot be found by a key in it.
    let r = api.get("jobs/?extra_vars__icontains=abc123").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({ "detail": "Filtering on extra_vars is not allowed." })
    );
}

#[tokio::test]
async fn stdout_txt_is_plain_text() {
    let (sim, api) = start(config()).await;
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    sim.wait_for_terminal(id, WAIT).await.unwrap();
    let r = api.get(&format!("jobs/{id}/stdout/?format=txt")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(r.text.contains("PLAY [cloudkit provision]"));
    assert!(r.text.contains("PLAY RECAP"));
}

#[tokio::test]
async fn a_purged_job_answers_404() {
    let (sim, api) = start(config()).await;
    let id = api.launch(PROVISION, json!({})).await;
    sim.wait_for_terminal(id, WAIT).await.unwrap();
    assert!(sim.purge_job(id));
    assert_eq!(
        api.get(&format!("jobs/{id}/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("jobs/{id}/cancel/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("jobs/?id__in={id}")).await.json()["count"],
        0
    );
    assert!(sim.job(id).unwrap().purged, "the ledger keeps it");

    // Deleting through the API: only a finished job.
    sim.set_template_behavior(PROVISION, JobBehavior::default().hold_running());
    let running = api.launch(PROVISION, json!({})).await;
    let delete = |id: u64| api.send(api.http.delete(api.url(&format!("jobs/{id}/"))));
    assert_eq!(delete(running).await.status, StatusCode::FORBIDDEN);
    sim.set_template_behavior(PROVISION, quick());
    sim.wait_for_terminal(running, WAIT).await.unwrap();
    assert_eq!(delete(running).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("jobs/{running}/")).await.status,
        StatusCode::NOT_FOUND
    );
}

// ---- cancel --------------------------------------------------------------------------

#[tokio::test]
async fn cancel_of_a_pending_job_is_immediate_and_a_terminal_job_answers_405() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(
        PROVISION,
        JobBehavior::default()
            .running(Duration::from_secs(60))
            .cancel_delay(Duration::from_secs(60)),
    );
    sim.update_template(PROVISION, |t| t.behavior.pending = Duration::from_secs(60));
    let id = api.launch(PROVISION, json!({})).await;
    assert_eq!(
        api.get(&format!("jobs/{id}/cancel/")).await.json(),
        json!({ "can_cancel": true })
    );
    let r = api.post(&format!("jobs/{id}/cancel/"), &json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.text, "");
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["status"], "canceled");
    assert_eq!(job["failed"], true);
    assert_eq!(job["job_explanation"], "");
    assert!(is_awx_timestamp(&job["canceled_on"]));
    assert!(is_awx_timestamp(&job["finished"]));
    assert_eq!(job["started"], Value::Null);
    assert_eq!(
        api.get(&format!("jobs/{id}/cancel/")).await.json(),
        json!({ "can_cancel": false })
    );
    let r = api.post(&format!("jobs/{id}/cancel/"), &json!({})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.json(),
        json!({ "detail": "Method \"POST\" not allowed." })
    );
}

#[tokio::test]
async fn cancel_of_a_running_job_is_asynchronous() {
    let (sim, api) = start(config()).await;
    // A cancel that cannot finish until the test says so: what is read in between is
    // the state after the 202, however slow the machine.
    let held = quick()
        .hold_running()
        .cancel_delay(Duration::from_secs(3600));
    sim.set_template_behavior(PROVISION, held);
    let id = api.launch(PROVISION, json!({})).await;
    sim.wait_for_job(id, WAIT, |j| j.status == JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        api.post(&format!("jobs/{id}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["status"], "running");
    assert_eq!(job["failed"], false);
    assert_eq!(
        api.get(&format!("jobs/{id}/cancel/")).await.json()["can_cancel"],
        true
    );
    assert!(
        is_awx_timestamp(&job["canceled_on"]),
        "AWX records canceled_on with the request"
    );
    sim.set_template_behavior(
        PROVISION,
        quick()
            .hold_running()
            .cancel_delay(Duration::from_millis(600)),
    );
    let record = sim.wait_for_terminal(id, WAIT).await.unwrap();
    let (asked, finished) = (
        record.cancel_requested_at.unwrap(),
        record.finished.unwrap(),
    );
    assert!(
        finished.duration_since(asked) >= k8s_openapi::jiff::SignedDuration::from_millis(600),
        "canceled {asked} → finished {finished}: the cancel delay counts from the request"
    );
    assert_eq!(record.status, JobStatus::Canceled);
    let job = api.get(&format!("jobs/{id}/")).await.json();
    assert_eq!(job["status"], "canceled");
    assert_eq!(job["failed"], true);
    assert_eq!(job["job_explanation"], "");
    assert!(is_awx_timestamp(&job["finished"]));
}

#[tokio::test]
async fn workflow_jobs_cancel_the_same_way() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(
        WORKFLOW,
        quick()
            .hold_running()
            .cancel_delay(Duration::from_millis(50)),
    );
    let wf = api
        .post("workflow_job_templates/9/launch/", &json!({}))
        .await
        .json()["workflow_job"]
        .as_u64()
        .unwrap();
    sim.wait_for_job(wf, WAIT, |j| j.status == JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        api.get(&format!("workflow_jobs/{wf}/cancel/")).await.json()["can_cancel"],
        true
    );
    assert_eq!(
        api.post(&format!("jobs/{wf}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.post(&format!("workflow_jobs/{wf}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        sim.wait_for_terminal(wf, WAIT).await.unwrap().status,
        JobStatus::Canceled
    );
    let r = api
        .post(&format!("workflow_jobs/{wf}/cancel/"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

// ---- auth ----------------------------------------------------------------------------

#[tokio::test]
async fn authentication_and_permissions() {
    let (sim, api) = start(config().token("viewer", Access::ReadOnly).user(
        "admin",
        "secret",
        Access::ReadWrite,
    ))
    .await;
    let id = api.launch(PROVISION, json!({})).await;

    let anonymous = Api::with_token(&sim, None);
    let r = anonymous.get(&format!("jobs/{id}/")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({ "detail": "Authentication credentials were not provided." })
    );

    let wrong = Api::with_token(&sim, Some("wrong"));
    let r = wrong.get(&format!("jobs/{id}/")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({ "detail": "Invalid token." }));

    let viewer = Api::with_token(&sim, Some("viewer"));
    assert_eq!(
        viewer.get(&format!("jobs/{id}/")).await.status,
        StatusCode::OK
    );
    let forbidden = json!({ "detail": "You do not have permission to perform this action." });
    let r = viewer.post("job_templates/7/launch/", &json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json(), forbidden);
    let r = viewer.post(&format!("jobs/{id}/cancel/"), &json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json(), forbidden);

    let basic = api
        .http
        .get(api.url(&format!("jobs/{id}/")))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    let basic = api
        .http
        .get(api.url(&format!("jobs/{id}/")))
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    sim.revoke_token(DEFAULT_TOKEN);
    assert_eq!(
        api.get(&format!("jobs/{id}/")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

// ---- faults --------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_n_answers_the_status_with_a_body_then_recovers() {
    let (sim, api) = start(config()).await;
    sim.fail_next(Endpoint::TemplateLookup, 2, 503);
    sim.fail_next(Endpoint::JobList, 1, 500);
    for _ in 0..2 {
        let r = api.get("job_templates/?name=x").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.text.contains("503"));
    }
    assert_eq!(
        api.get("job_templates/?name=x").await.status,
        StatusCode::OK
    );
    let r = api.get("jobs/").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.json()["detail"].is_string());
    assert_eq!(api.get("jobs/").await.status, StatusCode::OK);
    let counters = sim.counter(Endpoint::TemplateLookup);
    assert_eq!(counters.requests, 3);
    assert_eq!(counters.faulted, 2);
    assert_eq!(counters.statuses[&503], 2);
    assert_eq!(counters.statuses[&200], 1);
}

#[tokio::test]
async fn error_rate_is_reproducible_for_a_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let (sim, api) = start(config().seed(seed)).await;
        sim.set_error_rate(Endpoint::JobList, 0.5);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(api.get("jobs/").await.status.as_u16());
        }
        statuses
    }
    let a = run(42).await;
    assert_eq!(a, run(42).await);
    assert!(a.contains(&200));
    assert!(a.iter().any(|s| [500, 502, 503].contains(s)));
    assert_ne!(a, run(43).await);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (sim, api) = start(config()).await;
    sim.rate_limit_next(Endpoint::JobDetail, 1, 7);
    let r = api.get("jobs/1/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
}

#[tokio::test]
async fn hang_never_answers_until_the_client_gives_up() {
    let (sim, _api) = start(config()).await;
    sim.hang_next(Endpoint::JobList, 1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}jobs/", sim.api_url());
    let err = client
        .get(&url)
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let hung = sim
        .requests()
        .into_iter()
        .find(|r| r.fault == Some(Fault::Hang))
        .unwrap();
    assert_eq!(hung.status, None);
    let ok = client
        .get(&url)
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_every_request_of_the_endpoint_only() {
    let (sim, api) = start(config()).await;
    sim.set_latency(Endpoint::JobDetail, Duration::from_millis(250));
    let t = Instant::now();
    api.get("jobs/1/").await;
    assert!(t.elapsed() >= Duration::from_millis(250));
    // With an hour's latency on the detail, the list answering at all shows it is not
    // delayed; no upper bound on a loaded machine's time needed.
    sim.set_latency(Endpoint::JobDetail, Duration::from_secs(3600));
    let held = api.get("jobs/1/");
    tokio::pin!(held);
    let list = tokio::time::timeout(WAIT, async {
        tokio::select! {
            biased;
            _ = &mut held => panic!("jobs/1/ answered despite an hour's latency"),
            list = api.get("jobs/") => list,
        }
    })
    .await
    .expect("jobs/ must answer while jobs/1/ is delayed");
    assert_eq!(list.status, StatusCode::OK);
}

#[tokio::test]
async fn slow_cancel_takes_its_time_but_cancels() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(
        PROVISION,
        quick().hold_running().cancel_delay(Duration::ZERO),
    );
    sim.slow_cancel(Duration::from_millis(400));
    let id = api.launch(PROVISION, json!({})).await;
    sim.wait_for_job(id, WAIT, |j| j.status == JobStatus::Running)
        .await
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        api.post(&format!("jobs/{id}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        sim.wait_for_terminal(id, WAIT).await.unwrap().status,
        JobStatus::Canceled
    );
}

#[tokio::test]
async fn a_lost_cancel_answers_202_and_the_job_runs_on() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(
        PROVISION,
        quick()
            .running(Duration::from_millis(300))
            .cancel_delay(Duration::ZERO),
    );
    sim.lose_next_cancels(1);
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    sim.wait_for_job(id, WAIT, |j| j.status == JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        api.post(&format!("jobs/{id}/cancel/"), &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let record = sim.wait_for_terminal(id, WAIT).await.unwrap();
    assert_eq!(record.status, JobStatus::Successful);
    assert_eq!(record.cancel_requested_at, None);
}

#[tokio::test]
async fn a_launch_can_create_its_job_and_still_answer_502() {
    let (sim, api) = start(config()).await;
    sim.launch_then_fail_next(1, 502);
    let r = api
        .post(
            "job_templates/7/launch/",
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let list = api.get("jobs/?job_template=7").await.json();
    assert_eq!(
        list["count"], 1,
        "the job exists although the launch failed"
    );
    assert_eq!(sim.jobs_of("ns", "vm1").len(), 1);
}

// ---- behaviour, overlap, ledger ------------------------------------------------------

#[tokio::test]
async fn behaviour_is_per_template_and_per_instance_and_changes_at_run_time() {
    let (sim, api) = start(config()).await;
    sim.set_instance_behavior(
        "ns",
        "bad",
        Some(Role::Provision),
        quick().outcome(Outcome::Failed),
    );
    sim.set_instance_behavior("ns", "slow", None, quick().hold_running());
    let bad = api.launch(PROVISION, vars("ns", "bad")).await;
    let good = api.launch(PROVISION, vars("ns", "good")).await;
    let slow = api.launch(PROVISION, vars("ns", "slow")).await;
    let bad_deprovision = api.launch(DEPROVISION, vars("ns", "bad")).await;
    assert_eq!(
        sim.wait_for_terminal(bad, WAIT).await.unwrap().status,
        JobStatus::Failed
    );
    assert_eq!(
        sim.wait_for_terminal(good, WAIT).await.unwrap().status,
        JobStatus::Successful
    );
    assert_eq!(
        sim.wait_for_terminal(bad_deprovision, WAIT)
            .await
            .unwrap()
            .status,
        JobStatus::Successful
    );
    sim.wait_for_job(slow, WAIT, |j| j.status == JobStatus::Running)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.job(slow).unwrap().status, JobStatus::Running);
    sim.clear_instance_behavior("ns", "slow", None);
    assert_eq!(
        sim.wait_for_terminal(slow, WAIT).await.unwrap().status,
        JobStatus::Successful
    );
}

#[tokio::test]
async fn a_provision_playbook_without_its_variables_fails() {
    let (sim, api) = start(
        config().template(
            TemplateConfig::job(40, "provision unprompted")
                .role(Role::Provision)
                .ask_variables_on_launch(false)
                .behavior(quick()),
        ),
    )
    .await;
    let id = api.launch(40, vars("ns", "vm1")).await;
    assert_eq!(
        sim.wait_for_terminal(id, WAIT).await.unwrap().status,
        JobStatus::Failed
    );
    let stdout = api.get(&format!("jobs/{id}/stdout/?format=txt")).await.text;
    assert!(stdout.contains("undefined"), "{stdout}");
    assert!(sim.effects().is_empty(), "no effect without variables");

    // With its variables and no cluster configured, the effect is recorded as skipped.
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    assert_eq!(
        sim.wait_for_terminal(id, WAIT).await.unwrap().status,
        JobStatus::Successful
    );
    let effects = sim.effects();
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0].job_id, id);
    assert!(matches!(effects[0].outcome, EffectOutcome::Skipped(_)));
}

#[tokio::test]
async fn the_overlap_flag_rises_when_provision_and_deprovision_of_one_instance_are_active() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(
        PROVISION,
        quick()
            .hold_running()
            .cancel_delay(Duration::from_millis(20)),
    );
    let provision = api.launch(PROVISION, vars("ns", "vm1")).await;
    let other = api.launch(DEPROVISION, vars("ns", "vm2")).await;
    sim.wait_for_terminal(other, WAIT).await.unwrap();
    assert!(
        sim.overlap().is_none(),
        "different instances do not overlap"
    );

    // Done right: cancel, wait for canceled, then deprovision.
    api.post(&format!("jobs/{provision}/cancel/"), &json!({}))
        .await;
    sim.wait_for_terminal(provision, WAIT).await.unwrap();
    let deprovision = api.launch(DEPROVISION, vars("ns", "vm1")).await;
    sim.wait_for_terminal(deprovision, WAIT).await.unwrap();
    assert!(sim.overlap().is_none());

    // Done wrong: deprovision while the provision still runs.
    let provision = api.launch(PROVISION, vars("ns", "vm1")).await;
    let deprovision = api.launch(DEPROVISION, vars("ns", "vm1")).await;
    let overlap = sim.overlap().expect("overlap flagged");
    assert_eq!(
        overlap.instance,
        InstanceRef {
            namespace: "ns".into(),
            name: "vm1".into()
        }
    );
    assert_eq!(overlap.provision_job, provision);
    assert_eq!(overlap.deprovision_job, deprovision);
    assert_eq!(sim.overlaps().len(), 1);
}

#[tokio::test]
async fn the_ledger_records_requests_jobs_and_counters() {
    let (sim, api) = start(config()).await;
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    api.get(&format!("jobs/?id__in={id}")).await;
    api.get(&format!("jobs/{id}/")).await;
    let ledger = sim.ledger();
    let methods: Vec<(&str, Endpoint, Option<u16>)> = ledger
        .requests
        .iter()
        .map(|r| (r.method.as_str(), r.endpoint, r.status))
        .collect();
    assert_eq!(
        methods,
        [
            ("POST", Endpoint::Launch, Some(201)),
            ("GET", Endpoint::JobList, Some(200)),
            ("GET", Endpoint::JobDetail, Some(200)),
        ]
    );
    assert_eq!(
        ledger.requests[1].query.as_deref(),
        Some(format!("id__in={id}").as_str())
    );
    assert_eq!(ledger.requests[1].path, "/api/controller/v2/jobs/");
    assert_eq!(ledger.counters[&Endpoint::Launch].requests, 1);
    let job = &ledger.jobs[0];
    assert_eq!(job.id, id);
    assert_eq!(job.kind, JobKind::Job);
    assert_eq!(job.template_id, PROVISION);
    assert_eq!(job.role, Some(Role::Provision));
    assert_eq!(job.desired_config_version.as_deref(), Some("abc123"));
    assert_eq!(job.history[0].status, JobStatus::New);
    assert!(ledger.overlaps.is_empty());
}

// ---- playbook effects on the real test API server ------------------------------------

mod effects {
    use super::*;
    use cloudkit_testbed::control_plane::ControlPlane;
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

    fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    #[tokio::test]
    async fn provision_creates_the_vm_and_vmi_and_marks_the_instance_deprovision_deletes_them() {
        let cp = ControlPlane::shared().await.unwrap();
        let client = cp.client().await.unwrap();
        let ns = cp.test_namespace("aap-sim-effects").await.unwrap();
        let instances: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &resource(
                "cloudkit.openshift.io",
                "v1alpha1",
                "ComputeInstance",
                "computeinstances",
            ),
        );
        let vms: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines"),
        );
        let vmis: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &resource(
                "kubevirt.io",
                "v1",
                "VirtualMachineInstance",
                "virtualmachineinstances",
            ),
        );
        let instance: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1",
            "kind": "ComputeInstance",
            "metadata": { "name": "vm1", "namespace": ns },
            "spec": { "templateID": "small" },
        }))
        .unwrap();
        instances
            .create(&PostParams::default(), &instance)
            .await
            .unwrap();

        let (sim, api) = start(config().kube(client.clone()).aap_finalizer(true)).await;
        let id = api.launch(PROVISION, vars(&ns, "vm1")).await;
        let record = sim
            .wait_for_terminal(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(record.status, JobStatus::Successful, "{:?}", sim.effects());
        assert_eq!(sim.effects()[0].outcome, EffectOutcome::Applied);

        let label = "cloudkit.openshift.io/computeinstance=vm1";
        let listed = vms
            .list(&ListParams::default().labels(label))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);
        let vm = &listed.items[0];
        assert_eq!(vm.metadata.name.as_deref(), Some("vm1"));
        assert_eq!(vm.data["spec"]["runStrategy"], "Always");
        let vmi = vmis.get("vm1").await.unwrap();
        assert_eq!(vmi.data["status"]["phase"], "Running");
        assert_eq!(
            vmi.metadata.labels.as_ref().unwrap()["cloudkit.openshift.io/computeinstance"],
            "vm1"
        );
        let marked = instances.get("vm1").await.unwrap();
        assert_eq!(
            marked.metadata.annotations.as_ref().unwrap()["cloudkit.openshift.io/reconciled-config-version"],
            "abc123"
        );

        assert_eq!(
            marked.metadata.finalizers,
            Some(vec!["cloudkit.openshift.io/computeinstance-aap".to_owned()])
        );

        let id = api.launch(DEPROVISION, vars(&ns, "vm1")).await;
        let record = sim
            .wait_for_terminal(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(record.status, JobStatus::Successful, "{:?}", sim.effects());
        assert!(
            vms.list(&ListParams::default().labels(label))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert!(vmis.get_opt("vm1").await.unwrap().is_none());
        let released = instances.get("vm1").await.unwrap();
        assert!(released.metadata.finalizers.unwrap_or_default().is_empty());
    }

    /// The payload of an instance whose status names its Tenant object.
    fn tenant_vars(namespace: &str, name: &str, tenant_object: &str) -> Value {
        let mut v = vars(namespace, name);
        v["ansible_eda"]["event"]["payload"]["status"]["tenantReference"] =
            json!({ "name": tenant_object, "namespace": namespace });
        v
    }

    #[tokio::test]
    async fn with_a_tenant_reference_the_vm_lives_in_the_tenants_namespace() {
        use cloudkit_testbed::kubevirt_sim::{vm_resource, vmi_resource};
        use cloudkit_testbed::tenants;

        let cp = ControlPlane::shared().await.unwrap();
        let client = cp.client().await.unwrap();
        let ns = cp.test_namespace("aap-sim-tenant").await.unwrap();
        let names = tenants::create_upstream_ready(&client, &ns, "acme", Vec::new())
            .await
            .unwrap();
        let instances: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &resource(
                "cloudkit.openshift.io",
                "v1alpha1",
                "ComputeInstance",
                "computeinstances",
            ),
        );
        let instance: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1",
            "kind": "ComputeInstance",
            "metadata": { "name": "vm1", "namespace": ns },
            "spec": { "templateID": "small" },
        }))
        .unwrap();
        instances
            .create(&PostParams::default(), &instance)
            .await
            .unwrap();
        let in_ns = |namespace: &str, ar: &ApiResource| -> Api<DynamicObject> {
            Api::namespaced_with(client.clone(), namespace, ar)
        };

        let (sim, api) = start(config().kube(client.clone())).await;
        let id = api
            .launch(PROVISION, tenant_vars(&ns, "vm1", &names.object))
            .await;
        let record = sim
            .wait_for_terminal(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(record.status, JobStatus::Successful, "{:?}", sim.effects());
        let vm = in_ns(&names.namespace, &vm_resource())
            .get("vm1")
            .await
            .unwrap();
        assert_eq!(
            vm.metadata.labels.unwrap()["cloudkit.openshift.io/computeinstance"],
            "vm1"
        );
        let vmi = in_ns(&names.namespace, &vmi_resource())
            .get("vm1")
            .await
            .unwrap();
        assert_eq!(vmi.data["status"]["phase"], "Running");
        assert!(
            in_ns(&ns, &vm_resource())
                .get_opt("vm1")
                .await
                .unwrap()
                .is_none(),
            "no VM beside the instance"
        );
        // The instance is marked where it is.
        let marked = instances.get("vm1").await.unwrap();
        assert_eq!(
            marked.metadata.annotations.unwrap()["cloudkit.openshift.io/reconciled-config-version"],
            "abc123"
        );

        let id = api
            .launch(DEPROVISION, tenant_vars(&ns, "vm1", &names.object))
            .await;
        let record = sim
            .wait_for_terminal(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(record.status, JobStatus::Successful, "{:?}", sim.effects());
        for ar in [vm_resource(), vmi_resource()] {
            assert!(
                in_ns(&names.namespace, &ar)
                    .get_opt("vm1")
                    .await
                    .unwrap()
                    .is_none(),
                "{} deleted from the tenant namespace",
                ar.kind
            );
        }
    }

    #[tokio::test]
    async fn a_tenant_that_is_missing_or_has_no_namespace_fails_the_job_naming_it() {
        use cloudkit_shared::tenant::{Tenant, TenantSpec};
        use cloudkit_testbed::kubevirt_sim::vm_resource;

        let cp = ControlPlane::shared().await.unwrap();
        let client = cp.client().await.unwrap();
        let ns = cp.test_namespace("aap-sim-tenant-missing").await.unwrap();
        // A Tenant its controller has not got to yet: no status.
        let pending = Tenant::new(
            "tenant-pending",
            TenantSpec {
                name: "pending".into(),
            },
        );
        Api::<Tenant>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &pending)
            .await
            .unwrap();

        let (sim, api) = start(config().kube(client.clone())).await;
        for (template, object) in [
            (PROVISION, "tenant-absent"),
            (PROVISION, "tenant-pending"),
            (DEPROVISION, "tenant-absent"),
        ] {
            let id = api.launch(template, tenant_vars(&ns, "vm1", object)).await;
            let record = sim
                .wait_for_terminal(id, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(record.status, JobStatus::Failed, "{:?}", sim.effects());
            let effect = sim.effects().into_iter().find(|e| e.job_id == id).unwrap();
            let expected =
                format!("Tenant {ns}/{object} is missing or has no status.namespace yet");
            assert_eq!(effect.outcome, EffectOutcome::Failed(expected.clone()));
            let stdout = api.get(&format!("jobs/{id}/stdout/?format=txt")).await;
            assert!(stdout.text.contains(&expected), "{}", stdout.text);
        }
        let everywhere: Api<DynamicObject> = Api::all_with(client.clone(), &vm_resource());
        let lp = ListParams::default().labels("cloudkit.openshift.io/computeinstance=vm1");
        let left: Vec<_> = everywhere
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|vm| {
                vm.metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&ns))
            })
            .collect();
        assert!(left.is_empty(), "no VM created: {left:?}");
    }

    #[tokio::test]
    async fn a_tenant_reference_without_a_name_is_undefined_for_the_playbook() {
        let (sim, api) = start(config()).await;
        let mut v = vars("team", "vm1");
        v["ansible_eda"]["event"]["payload"]["status"]["tenantReference"] =
            json!({ "namespace": "team" });
        let id = api.launch(PROVISION, v).await;
        let record = sim.wait_for_terminal(id, WAIT).await.unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        let stdout = api.get(&format!("jobs/{id}/stdout/?format=txt")).await;
        assert!(
            stdout
                .text
                .contains("'dict object' has no attribute 'name'"),
            "{}",
            stdout.text
        );
    }
}

#[tokio::test]
async fn a_stopped_simulator_refuses_connections_even_on_kept_alive_ones() {
    let (sim, api) = start(config()).await;
    sim.hang_next(Endpoint::JobList, 1);
    let hung = tokio::spawn({
        let url = api.url("jobs/");
        let http = api.http.clone();
        async move { http.get(url).bearer_auth(DEFAULT_TOKEN).send().await }
    });
    assert_eq!(api.get("jobs/1/").await.status, StatusCode::NOT_FOUND);
    sim.wait_until(WAIT, || {
        sim.requests()
            .iter()
            .any(|r| r.fault == Some(Fault::Hang))
            .then_some(())
    })
    .await
    .unwrap();
    tokio::time::timeout(WAIT, sim.stop()).await.unwrap();
    // The hung request ends with the simulator.
    let _ = tokio::time::timeout(WAIT, hung).await.unwrap();
    let err = api
        .http
        .get(api.url("jobs/1/"))
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}

// ---- what other AWX clients read first: roots, config, organizations, OPTIONS ---------

#[tokio::test]
async fn api_roots_list_the_versions_under_each_prefix_without_credentials() {
    let (sim, api) = start(config()).await;
    let anonymous = Api::with_token(&sim, None);
    for prefix in ["/api", "/api/controller"] {
        let r = anonymous.get(&format!("{prefix}/")).await;
        assert_eq!(r.status, StatusCode::OK, "{prefix}: {}", r.text);
        let body = r.json();
        let v2 = format!("{prefix}/v2/");
        assert_eq!(body["current_version"], v2.as_str());
        assert_eq!(body["available_versions"], json!({ "v2": v2 }));
        assert_eq!(body["description"], "AWX REST API");
        // Django's slash redirect applies to the root too.
        let r = anonymous.get(prefix).await;
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers[LOCATION], format!("{prefix}/").as_str());
    }
    let root = anonymous.get("").await;
    assert_eq!(root.status, StatusCode::OK);
    let root = root.json();
    for name in ["config", "organizations", "unified_job_templates", "jobs"] {
        assert_eq!(
            root[name],
            format!("/api/controller/v2/{name}/").as_str(),
            "{root}"
        );
    }
    // An unknown token is no user (anonymous is allowed here); a wrong password is a 401.
    assert_eq!(
        Api::with_token(&sim, Some("wrong")).get("").await.status,
        StatusCode::OK
    );
    let r = api
        .http
        .get(api.url(""))
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = api.post("/api/", &json!({})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn config_needs_credentials_and_reports_the_version_of_ping_and_the_headers() {
    let (sim, api) = start(config().token("viewer", Access::ReadOnly)).await;
    let r = Api::with_token(&sim, None).get("config/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.get("config/").await;
    assert_eq!(r.status, StatusCode::OK);
    let version = r.headers["x-api-product-version"].to_str().unwrap();
    assert_eq!(r.headers["x-api-product-name"], "AWX");
    let body = r.json();
    assert_eq!(body["version"], version);
    assert_eq!(body["license_info"]["license_type"], "open");
    assert_eq!(body["time_zone"], "UTC");
    assert!(body["project_base_dir"].is_string());
    assert_eq!(api.get("ping/").await.json()["version"], version);
    // Without admin rights the project paths stay out.
    let viewer = Api::with_token(&sim, Some("viewer"))
        .get("config/")
        .await
        .json();
    assert_eq!(viewer["version"], version);
    assert!(viewer.get("project_base_dir").is_none());
}

#[tokio::test]
async fn organizations_are_found_by_name_and_match_the_template_summaries() {
    let (sim, api) =
        start(config().template(TemplateConfig::job(30, "elsewhere").organization("Other"))).await;
    let all = api.get("organizations/").await.json();
    assert_eq!(all["count"], 2);
    let names: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "Other"], "ordered by name");

    let r = api.get("organizations/?name=Other").await.json();
    assert_eq!(r["count"], 1);
    let other = &r["results"][0];
    let id = other["id"].as_u64().unwrap();
    assert_eq!(other["type"], "organization");
    assert_eq!(
        other["url"],
        format!("/api/controller/v2/organizations/{id}/").as_str()
    );
    assert_eq!(
        other["summary_fields"]["related_field_counts"]["job_templates"],
        1
    );

    let template = api.get("job_templates/30/").await.json();
    assert_eq!(template["organization"], id);
    assert_eq!(template["summary_fields"]["organization"]["id"], id);
    assert_eq!(template["summary_fields"]["organization"]["name"], "Other");
    assert_eq!(template["related"]["organization"], other["url"]);

    // Templates filter by the organization's id, as awx.awx looks them up.
    let r = api
        .get(&format!("job_templates/?name=elsewhere&organization={id}"))
        .await
        .json();
    assert_eq!(r["count"], 1);
    let r = api
        .get(&format!("job_templates/?name=unprompted&organization={id}"))
        .await
        .json();
    assert_eq!(r["count"], 0);

    let detail = api.get(&format!("organizations/{id}/")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(&detail.json(), other);
    assert_eq!(
        api.get("organizations/99/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get("organizations/?name=Nope").await.json()["count"], 0);
    assert_eq!(
        api.get("organizations/?colour=red").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        Api::with_token(&sim, None)
            .get("organizations/")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unified_job_templates_hold_both_kinds_each_as_its_own_type() {
    let (_sim, api) = start(config()).await;
    let r = api
        .get("unified_job_templates/?name=cloudkit+provision")
        .await
        .json();
    assert_eq!(r["count"], 2);
    let mut found: Vec<(String, u64)> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().to_owned(),
                t["id"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("job_template".to_owned(), PROVISION),
            ("workflow_job_template".to_owned(), WORKFLOW)
        ]
    );
    // What ansible-rulebook reads from each entry.
    for t in r["results"].as_array().unwrap() {
        for field in [
            "ask_limit_on_launch",
            "ask_labels_on_launch",
            "ask_inventory_on_launch",
            "ask_variables_on_launch",
        ] {
            assert!(t[field].is_boolean(), "{field} in {t}");
        }
        assert_eq!(t["summary_fields"]["organization"]["name"], "Default");
        assert!(
            t["related"]["launch"]
                .as_str()
                .unwrap()
                .ends_with("/launch/")
        );
    }
    let r = api
        .get("unified_job_templates/?name=cloudkit+provision&type=workflow_job_template")
        .await
        .json();
    assert_eq!(r["count"], 1);
    assert_eq!(r["results"][0]["id"], WORKFLOW);
    let r = api.get("unified_job_templates/?type=project").await.json();
    assert_eq!(r["count"], 0);
    let r = api.get("unified_job_templates/").await.json();
    assert_eq!(r["count"], 4);
}

#[tokio::test]
async fn every_route_handles_exactly_the_methods_its_allow_header_lists() {
    let (sim, api) = start(config()).await;
    sim.set_template_behavior(DEPROVISION, JobBehavior::default().hold_running());
    let running = api.launch(DEPROVISION, json!({})).await;
    let done = api.launch(PROVISION, json!({})).await;
    sim.wait_for_terminal(done, WAIT).await.unwrap();
    let paths = [
        "/api/".to_owned(),
        String::new(),
        "ping/".to_owned(),
        "config/".to_owned(),
        "organizations/".to_owned(),
        "organizations/1/".to_owned(),
        "unified_job_templates/".to_owned(),
        "job_templates/".to_owned(),
        format!("job_templates/{PROVISION}/"),
        format!("job_templates/{PROVISION}/launch/"),
        format!("job_templates/{PROVISION}/jobs/"),
        "workflow_job_templates/".to_owned(),
        format!("workflow_job_templates/{WORKFLOW}/launch/"),
        "jobs/".to_owned(),
        format!("jobs/{done}/"),
        format!("jobs/{running}/cancel/"),
        format!("jobs/{done}/stdout/"),
        "workflow_jobs/".to_owned(),
    ];
    use reqwest::Method as M;
    let methods = [
        M::GET,
        M::POST,
        M::PUT,
        M::PATCH,
        M::DELETE,
        M::HEAD,
        M::OPTIONS,
    ];
    for path in &paths {
        let options = api.request(M::OPTIONS, path).await;
        assert_eq!(
            options.status,
            StatusCode::OK,
            "OPTIONS {path}: {}",
            options.text
        );
        let allow = options.headers["allow"].to_str().unwrap().to_owned();
        assert!(allow.ends_with("HEAD, OPTIONS"), "{path}: {allow}");
        for method in &methods {
            let r = api.request(method.clone(), path).await;
            let listed = allow.split(", ").any(|m| m == method.as_str());
            assert_eq!(
                r.status == StatusCode::METHOD_NOT_ALLOWED,
                !listed,
                "{method} {path} answered {} with Allow: {allow}",
                r.status
            );
            assert_eq!(
                r.headers["allow"].to_str().unwrap(),
                allow,
                "{method} {path}"
            );
            assert_eq!(r.headers["x-api-product-name"], "AWX", "{method} {path}");
        }
    }
}

#[tokio::test]
async fn options_describe_the_fields_and_need_credentials_like_get() {
    let (sim, api) = start(config().token("viewer", Access::ReadOnly)).await;
    let r = api
        .request(reqwest::Method::OPTIONS, "job_templates/")
        .await
        .json();
    assert_eq!(r["name"], "Job Templates");
    assert_eq!(r["types"], json!(["job_template"]));
    assert_eq!(r["max_page_size"], 200);
    let get = &r["actions"]["GET"];
    assert_eq!(get["name"]["type"], "string");
    assert_eq!(get["name"]["filterable"], true);
    assert_eq!(get["organization"]["type"], "id");
    assert!(
        r["actions"].get("POST").is_none(),
        "the simulator creates no templates"
    );

    // DRF describes a detail view without looking the object up.
    let r = api
        .request(reqwest::Method::OPTIONS, "job_templates/12345/")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["allow"], "GET, HEAD, OPTIONS");

    let launch = format!("job_templates/{PROVISION}/launch/");
    let r = api.request(reqwest::Method::OPTIONS, &launch).await.json();
    assert_eq!(r["actions"]["POST"]["extra_vars"]["type"], "json");
    // A credential that may not launch gets no POST action.
    let viewer = Api::with_token(&sim, Some("viewer"));
    let r = viewer
        .request(reqwest::Method::OPTIONS, &launch)
        .await
        .json();
    assert!(r["actions"].get("POST").is_none(), "{r}");
    assert!(r["actions"]["GET"].is_object());

    let anonymous = Api::with_token(&sim, None);
    assert_eq!(
        anonymous
            .request(reqwest::Method::OPTIONS, "jobs/")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anonymous
            .request(reqwest::Method::OPTIONS, "/api/")
            .await
            .status,
        StatusCode::OK
    );
    // Metadata is not the resource: it is kept out of the resource's counters.
    assert_eq!(sim.counter(Endpoint::TemplateLookup).requests, 0);
}

#[tokio::test]
async fn a_template_lists_its_own_jobs_as_awxkit_reads_a_launch_back() {
    let (_sim, api) = start(config()).await;
    let provision = api.launch(PROVISION, json!({})).await;
    api.launch(DEPROVISION, json!({})).await;
    let r = api
        .get(&format!("job_templates/{PROVISION}/jobs/?id={provision}"))
        .await
        .json();
    assert_eq!(r["count"], 1);
    assert_eq!(r["results"][0]["id"], provision);
    let r = api
        .get(&format!("job_templates/{PROVISION}/jobs/"))
        .await
        .json();
    assert_eq!(r["count"], 1, "only this template's jobs");
    assert_eq!(
        api.get("job_templates/999/jobs/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!(
            "workflow_job_templates/{PROVISION}/workflow_jobs/"
        ))
        .await
        .status,
        StatusCode::NOT_FOUND,
        "a job template is no workflow job template"
    );
}

const FAILING_TASK: &str = "Create the VM";
const FAILING_MSG: &str = "spec: Required value";

/// A provision template whose playbook fails in a named task.
async fn failing_job() -> (AapSimulator, Api, u64) {
    let behavior = JobBehavior {
        failing_task: Some(FailingTask::new(FAILING_TASK, "localhost", FAILING_MSG)),
        ..quick()
    };
    let config = AapSimConfig::new().template(
        TemplateConfig::job(PROVISION, "cloudkit provision")
            .role(Role::Provision)
            .behavior(behavior),
    );
    let (sim, api) = start(config).await;
    let id = api.launch(PROVISION, vars("ns", "vm1")).await;
    sim.wait_for_terminal(id, WAIT).await.unwrap();
    (sim, api, id)
}

#[tokio::test]
async fn a_failing_task_ends_the_job_failed_with_awx_events_in_order() {
    let (_sim, api, id) = failing_job().await;
    assert_eq!(
        api.get(&format!("jobs/{id}/")).await.json()["status"],
        "failed"
    );
    let page = api.get(&format!("jobs/{id}/job_events/")).await.json();
    let events: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "playbook_on_start",
            "playbook_on_play_start",
            "playbook_on_task_start",
            "runner_on_ok",
            "playbook_on_task_start",
            "runner_on_failed",
            "playbook_on_stats"
        ]
    );
    assert_eq!(page["count"], 7);
    let counters: Vec<u64> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(counters, [1, 2, 3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn failed_events_filter_by_kind_newest_first_with_the_module_message() {
    let (_sim, api, id) = failing_job().await;
    // AWX marks the failed result's task, play and playbook, and the stats, failed too.
    let all_failed = api
        .get(&format!("jobs/{id}/job_events/?failed=true"))
        .await
        .json();
    assert_eq!(all_failed["count"], 5, "{all_failed}");
    let page = api
        .get(&format!(
            "jobs/{id}/job_events/?failed=true&event__in=runner_on_failed,runner_on_unreachable&order_by=-counter&page_size=5"
        ))
        .await
        .json();
    assert_eq!(page["count"], 1, "{page}");
    let event = &page["results"][0];
    assert_eq!(event["event"], "runner_on_failed");
    assert_eq!(event["failed"], true);
    assert_eq!(event["task"], FAILING_TASK);
    assert_eq!(event["host_name"], "localhost");
    assert_eq!(event["play"], "cloudkit provision");
    assert_eq!(event["event_data"]["res"]["msg"], FAILING_MSG);
    // The event's stdout keeps ansible-playbook's colours; the job's text output does not.
    let stdout = event["stdout"].as_str().unwrap();
    assert!(
        stdout.contains('\u{1b}') && stdout.contains(FAILING_MSG),
        "{stdout}"
    );
    let text = api.get(&format!("jobs/{id}/stdout/?format=txt")).await.text;
    assert!(text.contains(&format!("TASK [{FAILING_TASK}]")), "{text}");
    assert!(text.contains("fatal: [localhost]: FAILED!") && text.contains(FAILING_MSG));
    assert!(!text.contains('\u{1b}'), "{text}");
    let single = api
        .get(&format!("jobs/{id}/job_events/?event=playbook_on_stats"))
        .await
        .json();
    assert_eq!(single["count"], 1);
    assert_eq!(single["results"][0]["failed"], true);
}

#[tokio::test]
async fn job_events_page_and_order_and_refuse_unknown_fields() {
    let (_sim, api, id) = failing_job().await;
    let page = api
        .get(&format!(
            "jobs/{id}/job_events/?order_by=-counter&page_size=2"
        ))
        .await
        .json();
    assert_eq!(page["count"], 7);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["results"][0]["counter"], 7);
    assert!(page["next"].as_str().unwrap().contains("page=2"), "{page}");
    let asc = api
        .get(&format!(
            "jobs/{id}/job_events/?order_by=counter&page_size=1&page=2"
        ))
        .await
        .json();
    assert_eq!(asc["results"][0]["counter"], 2);
    let bad = api.get(&format!("jobs/{id}/job_events/?nope=1")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.get("jobs/999/job_events/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_failed_workflow_job_lists_its_failed_node_whose_job_has_the_events() {
    let behavior = JobBehavior {
        failing_task: Some(FailingTask::new(FAILING_TASK, "localhost", FAILING_MSG)),
        ..quick()
    };
    let config = AapSimConfig::new()
        .template(TemplateConfig::job(PROVISION, "cloudkit provision node"))
        .template(
            TemplateConfig::workflow(WORKFLOW, "cloudkit provision")
                .role(Role::Provision)
                .node_template(PROVISION)
                .behavior(behavior),
        );
    let (sim, api) = start(config).await;
    let reply = api
        .post(
            &format!("workflow_job_templates/{WORKFLOW}/launch/"),
            &json!({ "extra_vars": vars("ns", "vm1") }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let workflow = reply.json()["id"].as_u64().unwrap();
    sim.wait_for_terminal(workflow, WAIT).await.unwrap();
    let detail = api.get(&format!("workflow_jobs/{workflow}/")).await.json();
    assert_eq!(detail["status"], "failed");
    let explanation = detail["job_explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("No error handling path for workflow job node(s) [(")
            && explanation.contains(",failed)]"),
        "{explanation}"
    );

    let nodes = api
        .get(&format!(
            "workflow_jobs/{workflow}/workflow_nodes/?job__failed=true&order_by=-id"
        ))
        .await
        .json();
    assert_eq!(nodes["count"], 1, "{nodes}");
    let node = &nodes["results"][0];
    assert_eq!(node["type"], "workflow_job_node");
    assert_eq!(node["workflow_job"], workflow);
    assert_eq!(node["unified_job_template"], PROVISION);
    let job = &node["summary_fields"]["job"];
    assert_eq!(job["type"], "job");
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failed"], true);
    let id = job["id"].as_u64().unwrap();
    assert_eq!(node["job"], id);
    assert_ne!(id, workflow);

    let events = api
        .get(&format!(
            "jobs/{id}/job_events/?failed=true&event__in=runner_on_failed,runner_on_unreachable"
        ))
        .await
        .json();
    assert_eq!(events["count"], 1, "{events}");
    assert_eq!(events["results"][0]["task"], FAILING_TASK);
    assert_eq!(
        events["results"][0]["event_data"]["res"]["msg"],
        FAILING_MSG
    );
    let none = api
        .get(&format!(
            "workflow_jobs/{workflow}/workflow_nodes/?job__failed=false"
        ))
        .await
        .json();
    assert_eq!(none["count"], 0);
    assert_eq!(
        api.get(&format!("jobs/{workflow}/job_events/"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
