//! Links into the AAP UI for a job: `CLOUDKIT_AAP_UI_JOB_URL`, a template with `{id}`
//! (and optionally `{type}`: `playbook` or `workflow`), or one derived from the API URL.

use super::AapJobKind;

/// The UI page of jobs for an API prefix: the AAP 2.5+ gateway serves the controller
/// API under `/api/controller` and its UI under `/execution/`; AWX serves `/api` and a
/// hash-routed UI.
pub fn default_template(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    match api.strip_suffix("/api/controller") {
        Some(base) => format!("{base}/execution/jobs/{{type}}/{{id}}/output"),
        None => {
            let base = api.strip_suffix("/api").unwrap_or(api);
            format!("{base}/#/jobs/{{type}}/{{id}}/output")
        }
    }
}

/// The URL of one job.
pub fn job_url(template: &str, kind: AapJobKind, id: u64) -> String {
    let kind = match kind {
        AapJobKind::Job => "playbook",
        AapJobKind::Workflow => "workflow",
    };
    template
        .replace("{type}", kind)
        .replace("{id}", &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_and_awx_have_their_own_ui_paths() {
        let gateway = default_template("https://aap.example/api/controller/");
        assert_eq!(
            job_url(&gateway, AapJobKind::Job, 42),
            "https://aap.example/execution/jobs/playbook/42/output"
        );
        let awx = default_template("https://awx.example/api");
        assert_eq!(
            job_url(&awx, AapJobKind::Workflow, 7),
            "https://awx.example/#/jobs/workflow/7/output"
        );
    }

    #[test]
    fn a_configured_template_is_filled_in() {
        assert_eq!(
            job_url("https://ui/j/{id}", AapJobKind::Job, 3),
            "https://ui/j/3"
        );
    }
}
