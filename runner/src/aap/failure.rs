//! Where an AAP job failed, from its failed host events (`runner_on_failed`,
//! `runner_on_unreachable`): play, task, host and the module's message, bounded so the
//! status stays small.

use cloudkit_shared::JobFailure;
use cloudkit_shared::text::strip_ansi;
use serde::Deserialize;
use serde_json::Value;

/// Longest play, task or host name kept.
const MAX_NAME: usize = 80;
/// Longest message kept.
const MAX_MESSAGE: usize = 240;

/// A job event, as much of AWX's JobEventSerializer as we read.
#[derive(Debug, Deserialize)]
pub(crate) struct EventWire {
    #[serde(default)]
    play: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    host_name: String,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    event_data: Value,
}

/// A workflow job node, as much of AWX's WorkflowJobNodeSerializer as we read.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeWire {
    #[serde(default)]
    summary_fields: NodeSummaryWire,
    #[serde(default)]
    failure_nodes: Vec<u64>,
    #[serde(default)]
    always_nodes: Vec<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct NodeSummaryWire {
    #[serde(default)]
    job: Option<NodeJobWire>,
}

/// `summary_fields.job` of a node: the unified job it spawned.
#[derive(Debug, Deserialize)]
struct NodeJobWire {
    id: u64,
    #[serde(default, rename = "type")]
    kind: String,
}

/// The playbook job of the failed node that failed the workflow: AWX fails a workflow
/// for a failed node with no failure or always path, so such a node wins over one whose
/// failure was handled. Nodes that ran something else (an approval, a project update, a
/// nested workflow) have no job events to read.
pub(crate) fn failed_node_job(nodes: &[NodeWire]) -> Option<u64> {
    let playbook = |n: &&NodeWire| {
        n.summary_fields
            .job
            .as_ref()
            .is_some_and(|j| j.kind == "job")
    };
    let unhandled = |n: &&NodeWire| n.failure_nodes.is_empty() && n.always_nodes.is_empty();
    let node = nodes
        .iter()
        .filter(playbook)
        .find(unhandled)
        .or_else(|| nodes.iter().find(playbook))?;
    node.summary_fields.job.as_ref().map(|j| j.id)
}

/// The newest failed event's detail; `None` when there is none.
pub(crate) fn from_events(events: &[EventWire]) -> Option<JobFailure> {
    let newest = events.first()?;
    let msg = match newest.event_data.pointer("/res/msg") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let message = if msg.trim().is_empty() {
        strip_ansi(&newest.stdout)
    } else {
        msg
    };
    Some(JobFailure {
        play: bounded(&newest.play, MAX_NAME),
        task: bounded(&newest.task, MAX_NAME),
        host: bounded(&newest.host_name, MAX_NAME),
        message: bounded(&message, MAX_MESSAGE),
    })
}

/// When the playbook never ran (no failed events): the explanation, else the last line
/// of the traceback.
pub(crate) fn from_job(job_explanation: &str, result_traceback: &str) -> Option<JobFailure> {
    let cause = if job_explanation.trim().is_empty() {
        result_traceback
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
    } else {
        job_explanation
    };
    let message = bounded(cause, MAX_MESSAGE);
    (!message.is_empty()).then(|| JobFailure {
        message,
        ..JobFailure::default()
    })
}

/// One line, at most `max` bytes (cut at a character boundary, with an ellipsis).
fn bounded(text: &str, max: usize) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> EventWire {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_module_message_wins_over_stdout() {
        let e = event(json!({
            "play": "p", "task": "Create the VM", "host_name": "localhost",
            "stdout": "\u{1b}[0;31mfatal: [localhost]: FAILED!\u{1b}[0m",
            "event_data": {"res": {"msg": "spec: Required value"}}
        }));
        let f = from_events(&[e]).unwrap();
        assert_eq!(f.task, "Create the VM");
        assert_eq!(f.message, "spec: Required value");
    }

    #[test]
    fn without_a_message_the_stdout_is_used_without_colours_on_one_line() {
        let e = event(json!({
            "task": "t",
            "stdout": "\u{1b}[0;31mfatal: [h]: UNREACHABLE!\n  ssh refused\u{1b}[0m",
            "event_data": {"res": {}}
        }));
        assert_eq!(
            from_events(&[e]).unwrap().message,
            "fatal: [h]: UNREACHABLE! ssh refused"
        );
    }

    #[test]
    fn every_part_is_bounded() {
        let long = "x".repeat(5000);
        let e = event(json!({
            "play": long, "task": long, "host_name": long,
            "event_data": {"res": {"msg": long}}
        }));
        let f = from_events(&[e]).unwrap();
        let total = f.play.len() + f.task.len() + f.host.len() + f.message.len();
        assert!(total < 600, "{total}");
    }

    fn node(value: Value) -> NodeWire {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_unhandled_failed_playbook_node_is_followed() {
        let nodes = [
            node(json!({"summary_fields": {"job": {"id": 7, "type": "workflow_approval"}}})),
            node(
                json!({"summary_fields": {"job": {"id": 8, "type": "job"}}, "failure_nodes": [3]}),
            ),
            node(json!({"summary_fields": {"job": {"id": 9, "type": "job"}}, "failure_nodes": []})),
        ];
        assert_eq!(failed_node_job(&nodes), Some(9));
        assert_eq!(failed_node_job(&nodes[..2]), Some(8));
        assert_eq!(failed_node_job(&nodes[..1]), None);
        assert_eq!(
            failed_node_job(&[node(json!({"summary_fields": {}}))]),
            None
        );
    }

    #[test]
    fn no_events_fall_back_to_the_explanation_then_the_traceback() {
        assert_eq!(from_events(&[]), None);
        assert_eq!(
            from_job("Job terminated due to error", "").unwrap().message,
            "Job terminated due to error"
        );
        assert_eq!(
            from_job("", "Traceback\n  File x\nValueError: bad\n")
                .unwrap()
                .message,
            "ValueError: bad"
        );
        assert_eq!(from_job("", ""), None);
    }
}
