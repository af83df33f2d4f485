//! Workflow job nodes and `workflow_jobs/{id}/workflow_nodes/`, as AWX's
//! WorkflowJobNodeSerializer and WorkflowJobWorkflowNodesList write them. A workflow job
//! template with a node template runs one node: a job of that job template, which carries
//! the playbook's events and output (a workflow job has none of its own).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::iso;
use super::config::JobKind;
use super::jobs::{Job, JobStatus, StatusChange};
use super::query::{self, FieldValue, Model};
use super::responses;
use super::state::{Shared, State};

/// Node ids are global in AWX (one table for all workflow jobs).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const WORKFLOW_JOB_NODE: Model = Model {
    name: "WorkflowJobNode",
    fields: &[
        "id",
        "created",
        "modified",
        "job",
        "workflow_job",
        "unified_job_template",
        "identifier",
        "do_not_run",
        "all_parents_must_converge",
        // Lookups through the `job` foreign key, as AWX's filter backend allows them.
        "job__failed",
        "job__status",
        "job__id",
    ],
    prevented: &[],
};

#[derive(Clone, Debug)]
pub(crate) struct WorkflowNode {
    pub(crate) id: u64,
    /// The job the node spawned.
    pub(crate) job: u64,
    pub(crate) created: Timestamp,
}

impl State {
    /// At the end of workflow job `id`: its node's job, ending as the workflow did and
    /// taking over the events and output the run produced. A failed node without an error
    /// path fails the workflow with AWX's explanation.
    pub(crate) fn finish_workflow_node(&mut self, id: u64, at: Timestamp) {
        let job_id = self.next_job_id;
        let Some(workflow) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(node_template) = self
            .templates
            .get(&workflow.template_id)
            .and_then(|t| t.node_template)
        else {
            return;
        };
        let template_name = self
            .templates
            .get(&node_template)
            .map_or_else(|| workflow.template_name.clone(), |t| t.name.clone());
        let status = workflow.status;
        let node = WorkflowNode {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            job: job_id,
            created: workflow.created,
        };
        let mut job = Job {
            id: job_id,
            kind: JobKind::Job,
            template_id: node_template,
            template_name,
            // The workflow is the one acting on the instance.
            role: None,
            instance: None,
            events: std::mem::take(&mut workflow.events),
            stdout: std::mem::take(&mut workflow.stdout),
            job_explanation: std::mem::take(&mut workflow.job_explanation),
            result_traceback: std::mem::take(&mut workflow.result_traceback),
            history: vec![StatusChange { status, at }],
            ..workflow.clone()
        };
        job.nodes.clear();
        if status.failed() && status != JobStatus::Canceled {
            workflow.job_explanation = format!(
                "No error handling path for workflow job node(s) [({},{})]. Workflow job node(s) missing unified job template and error handling path [].",
                node.id,
                status.as_str()
            );
        }
        workflow.nodes.push(node);
        self.next_job_id += 1;
        self.jobs.insert(job_id, job);
    }
}

fn field(state: &State, workflow: &Job, n: &WorkflowNode, name: &str) -> Option<FieldValue> {
    let job = state.jobs.get(&n.job);
    Some(match name {
        "id" => FieldValue::Int(Some(n.id)),
        "created" | "modified" => FieldValue::Time(Some(n.created)),
        "job" | "job__id" => FieldValue::Ref(Some(n.job)),
        "workflow_job" => FieldValue::Ref(Some(workflow.id)),
        "unified_job_template" => FieldValue::Ref(job.map(|j| j.template_id)),
        "identifier" => FieldValue::Str(Some(identifier(n.id))),
        "do_not_run" | "all_parents_must_converge" => FieldValue::Bool(false),
        "job__failed" => FieldValue::Bool(job.is_some_and(|j| j.status.failed())),
        "job__status" => FieldValue::Str(job.map(|j| j.status.as_str().to_owned())),
        _ => return None,
    })
}

fn identifier(node: u64) -> String {
    format!("00000000-0000-4000-9000-{node:012x}")
}

fn serialize(shared: &Shared, state: &State, workflow: &Job, n: &WorkflowNode) -> Value {
    let url = shared.url(&format!("workflow_job_nodes/{}/", n.id));
    let job = state.jobs.get(&n.job);
    let template = job.map(|j| j.template_id);
    let job_summary = job.map(|j| {
        json!({
            "id": j.id,
            "name": j.template_name,
            "description": "",
            "status": j.status.as_str(),
            "failed": j.status.failed(),
            "started": j.started.map(iso),
            "elapsed": j.elapsed(state.now()),
            "type": "job",
            "canceled_on": j.canceled_on.map(iso),
        })
    });
    json!({
        "id": n.id,
        "type": "workflow_job_node",
        "url": url,
        "related": {
            "credentials": format!("{url}credentials/"),
            "success_nodes": format!("{url}success_nodes/"),
            "failure_nodes": format!("{url}failure_nodes/"),
            "always_nodes": format!("{url}always_nodes/"),
            "unified_job_template": template.map(|t| shared.url(&format!("job_templates/{t}/"))),
            "job": shared.url(&format!("jobs/{}/", n.job)),
            "workflow_job": shared.url(&format!("workflow_jobs/{}/", workflow.id)),
        },
        "summary_fields": {
            "job": job_summary,
            "workflow_job": {"id": workflow.id, "name": workflow.template_name, "description": ""},
            "unified_job_template": job.map(|j| json!({
                "id": j.template_id, "name": j.template_name, "description": "", "unified_job_type": "job",
            })),
        },
        "created": iso(n.created),
        "modified": iso(n.created),
        "extra_data": {},
        "inventory": null,
        "scm_branch": null,
        "job_type": null,
        "job_tags": null,
        "skip_tags": null,
        "limit": null,
        "diff_mode": null,
        "verbosity": null,
        "execution_environment": null,
        "forks": null,
        "job_slice_count": null,
        "timeout": null,
        "job": n.job,
        "workflow_job": workflow.id,
        "unified_job_template": template,
        "success_nodes": [],
        "failure_nodes": [],
        "always_nodes": [],
        "all_parents_must_converge": false,
        "do_not_run": false,
        "identifier": identifier(n.id),
    })
}

/// `GET workflow_jobs/{id}/workflow_nodes/`.
pub(crate) fn list(shared: &Shared, id: u64, params: &[(String, String)], path: &str) -> Response {
    let state = shared.lock();
    let Some(workflow) = state
        .jobs
        .get(&id)
        .filter(|j| j.kind == JobKind::Workflow && !j.purged)
    else {
        return responses::not_found();
    };
    let nodes: Vec<&WorkflowNode> = workflow.nodes.iter().collect();
    match query::list(nodes, params, path, &WORKFLOW_JOB_NODE, |n, name| {
        field(&state, workflow, n, name)
    }) {
        Err(e) => e.response(),
        Ok(page) => page.response(|n| serialize(shared, &state, workflow, n)),
    }
}
