//! The AAP controller REST client: template lookup, launch, recovery of a launch lost in
//! a crash, batched polling, cancel. docs/providers.md ("AAP controller REST API") is
//! the contract.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudkit_shared::JobFailure;
use cloudkit_shared::names::CORRELATION_EXTRA_VAR;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::answer::{decode, fail, rejected_fields};
use super::config::AapConfig;
use super::error::AapError;
use super::failure;
use super::request::Http;
use super::types::{
    AapJob, AapJobKind, CanCancelWire, CancelOutcome, JobWire, LaunchWire, Launched, PageWire,
    TemplateWire,
};

/// AWX's largest page; also how many ids go into one `id__in` list.
const MAX_PAGE_SIZE: usize = 200;

/// `find_launch` looks this much further back than asked: AAP's clock and ours may
/// disagree, and the correlation key, not the time, decides a match.
const CLOCK_SKEW_MARGIN: SignedDuration = SignedDuration::from_secs(600);

/// Guard against a `next` link that never ends.
const MAX_PAGES: usize = 1000;

/// A template found by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateRef {
    pub kind: AapJobKind,
    pub id: u64,
}

/// Client of one AAP controller. Cheap to clone; clones share the connection pool, the
/// token and the template cache.
#[derive(Clone, Debug)]
pub struct AapClient {
    pub(super) inner: Arc<Inner>,
}

/// What the clones share.
#[derive(Debug)]
pub(super) struct Inner {
    http: Http,
    organization: Option<String>,
    templates: Mutex<HashMap<String, (TemplateRef, Instant)>>,
    template_refresh: Duration,
    /// Held while a template is looked up, so concurrent launches that all miss the cache
    /// send one lookup, not one each.
    lookup: tokio::sync::Mutex<()>,
}

impl AapClient {
    pub fn new(config: AapConfig) -> Result<Self, AapError> {
        Ok(Self {
            inner: Arc::new(Inner {
                http: Http::new(&config)?,
                organization: config.organization.filter(|o| !o.is_empty()),
                templates: Mutex::new(HashMap::new()),
                template_refresh: config.template_refresh,
                lookup: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// `{base_url}/v2/`.
    pub fn api_url(&self) -> &Url {
        &self.inner.http.api
    }

    // ---- templates ------------------------------------------------------------------

    /// Finds a template by name: job templates first, then workflow job templates.
    /// Cached for the refresh period; the entry is dropped when a launch by its id answers
    /// 404.
    pub async fn template(&self, name: &str) -> Result<TemplateRef, AapError> {
        if let Some(found) = self.cached_template(name) {
            return Ok(found);
        }
        let _one_at_a_time = self.inner.lookup.lock().await;
        // Another caller may have looked it up while this one waited.
        if let Some(found) = self.cached_template(name) {
            return Ok(found);
        }
        for kind in AapJobKind::ALL {
            let mut query = vec![("name", name)];
            if let Some(org) = &self.inner.organization {
                query.push(("organization__name", org.as_str()));
            }
            let url = self
                .inner
                .http
                .url(&format!("{}/", kind.templates_collection()), &query)?;
            let answer = self.inner.http.get(&url).await?;
            if answer.status != StatusCode::OK {
                let action = format!("list {}s", kind.templates_collection().replace('_', " "));
                return Err(fail(answer, &action));
            }
            let page: PageWire<TemplateWire> = decode(&answer)?;
            let count = page.count.unwrap_or(page.results.len() as u64);
            match page.results.as_slice() {
                [] => continue,
                [one] if count == 1 => {
                    let found = TemplateRef { kind, id: one.id };
                    tracing::debug!(template = name, ?kind, id = one.id, "found AAP template");
                    self.templates()
                        .insert(name.to_owned(), (found, Instant::now()));
                    return Ok(found);
                }
                many => {
                    return Err(AapError::AmbiguousTemplate {
                        name: name.to_owned(),
                        count,
                        organizations: many.iter().map(TemplateWire::organization).collect(),
                    });
                }
            }
        }
        Err(AapError::TemplateNotFound {
            name: name.to_owned(),
            organization: self.inner.organization.clone(),
        })
    }

    fn cached_template(&self, name: &str) -> Option<TemplateRef> {
        let refresh = self.inner.template_refresh;
        self.templates()
            .get(name)
            .filter(|(_, at)| at.elapsed() < refresh)
            .map(|(found, _)| *found)
    }

    fn templates(&self) -> std::sync::MutexGuard<'_, HashMap<String, (TemplateRef, Instant)>> {
        self.inner
            .templates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    // ---- launch ---------------------------------------------------------------------

    /// Launches the template named `template` with `{"extra_vars": extra_vars}`.
    ///
    /// Never repeated by itself: after a transient error the job may exist all the same,
    /// so the caller asks [`AapClient::find_launch`] before launching again.
    pub async fn launch(&self, template: &str, extra_vars: Value) -> Result<Launched, AapError> {
        let body = json!({ "extra_vars": extra_vars });
        let found = self.template(template).await?;
        match self.launch_by_id(template, found, &body).await {
            Err(AapError::TemplateNotFound { .. }) => {
                // Deleted and maybe recreated under a new id: look it up once more.
                tracing::info!(
                    template,
                    id = found.id,
                    "AAP template id is gone; looking it up again"
                );
                self.templates().remove(template);
                let found = self.template(template).await?;
                self.launch_by_id(template, found, &body).await
            }
            other => other,
        }
    }

    async fn launch_by_id(
        &self,
        template: &str,
        found: TemplateRef,
        body: &Value,
    ) -> Result<Launched, AapError> {
        let path = format!("{}/{}/launch/", found.kind.templates_collection(), found.id);
        let url = self.inner.http.url(&path, &[])?;
        let answer = self.inner.http.send(Method::POST, &url, Some(body)).await?;
        match answer.status {
            status if status.is_success() => {
                let wire: LaunchWire = decode(&answer)?;
                let id = match found.kind {
                    AapJobKind::Job => wire.job,
                    AapJobKind::Workflow => wire.workflow_job,
                }
                .or(wire.id)
                .ok_or_else(|| AapError::Decode {
                    url: answer.url.clone(),
                    cause: "the launch answer names no job id".to_owned(),
                })?;
                let launched = Launched {
                    id,
                    kind: found.kind,
                };
                let ignored: Vec<String> = wire
                    .ignored_fields
                    .map(|f| f.into_iter().map(|(k, _)| k).collect())
                    .unwrap_or_default();
                if !ignored.is_empty() {
                    tracing::warn!(template, job = id, ?ignored, "AAP ignored launch fields");
                    return Err(AapError::VariablesIgnored {
                        template: template.to_owned(),
                        fields: ignored,
                        job: launched,
                    });
                }
                tracing::info!(template, job = id, kind = ?found.kind, "launched AAP job");
                Ok(launched)
            }
            StatusCode::BAD_REQUEST => Err(AapError::LaunchRejected {
                template: template.to_owned(),
                fields: rejected_fields(&answer),
            }),
            StatusCode::NOT_FOUND => Err(AapError::TemplateNotFound {
                name: template.to_owned(),
                organization: self.inner.organization.clone(),
            }),
            _ => Err(fail(answer, &format!("launch template {template:?}"))),
        }
    }

    /// Finds the job a launch of `template` created at or after `created_after` with
    /// `extra_vars.cloudkit_correlation_key == correlation_key`: the launch a crash (or a
    /// lost answer) left unrecorded.
    pub async fn find_launch(
        &self,
        template: &str,
        correlation_key: &str,
        created_after: Timestamp,
    ) -> Result<Option<Launched>, AapError> {
        let found = self.template(template).await?;
        let kind = found.kind;
        let since = created_after
            .checked_sub(CLOCK_SKEW_MARGIN)
            .unwrap_or(created_after)
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let id = found.id.to_string();
        let page_size = MAX_PAGE_SIZE.to_string();
        let mut url = self.inner.http.url(
            &format!("{}/", kind.jobs_collection()),
            &[
                (kind.template_field(), id.as_str()),
                ("created__gte", since.as_str()),
                ("order_by", "-created"),
                ("page_size", page_size.as_str()),
            ],
        )?;
        for _ in 0..MAX_PAGES {
            let page: PageWire<JobWire> = self.list_page(&url, kind).await?;
            for candidate in &page.results {
                let vars = match candidate.extra_vars_object() {
                    Some(vars) => Some(vars),
                    // Older list serializers leave extra_vars out: read the detail.
                    None if candidate.extra_vars.is_none() => self
                        .job_wire(kind, candidate.id)
                        .await?
                        .and_then(|w| w.extra_vars_object()),
                    None => None,
                };
                let matches = vars
                    .as_ref()
                    .and_then(|v| v.get(CORRELATION_EXTRA_VAR))
                    .and_then(Value::as_str)
                    == Some(correlation_key);
                if matches {
                    tracing::info!(
                        template,
                        job = candidate.id,
                        "found an earlier launch by its correlation key"
                    );
                    return Ok(Some(Launched {
                        id: candidate.id,
                        kind,
                    }));
                }
            }
            match page.next {
                Some(next) => url = self.inner.http.resolve(&next)?,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    // ---- jobs -----------------------------------------------------------------------

    /// The state of many jobs: one list request per kind and per [`MAX_PAGE_SIZE`] ids
    /// (`/jobs/?id__in=...`). A job missing from the answer was purged. Any failed
    /// request fails the whole poll: the caller keeps what it knew and asks again.
    pub async fn poll(
        &self,
        jobs: &[(AapJobKind, u64)],
    ) -> Result<HashMap<(AapJobKind, u64), AapJob>, AapError> {
        let mut found = HashMap::with_capacity(jobs.len());
        for kind in AapJobKind::ALL {
            let mut ids: Vec<u64> = jobs
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(MAX_PAGE_SIZE) {
                let list = chunk
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let page_size = MAX_PAGE_SIZE.to_string();
                let mut url = self.inner.http.url(
                    &format!("{}/", kind.jobs_collection()),
                    &[
                        ("id__in", list.as_str()),
                        ("order_by", "id"),
                        ("page_size", page_size.as_str()),
                    ],
                )?;
                for _ in 0..MAX_PAGES {
                    let page: PageWire<JobWire> = self.list_page(&url, kind).await?;
                    for wire in page.results {
                        found.insert((kind, wire.id), AapJob::from_wire(kind, wire));
                    }
                    match page.next {
                        Some(next) => url = self.inner.http.resolve(&next)?,
                        None => break,
                    }
                }
            }
        }
        Ok(found)
    }

    /// Where a failed job failed: its newest failed host events (one request), else its
    /// explanation or traceback (one more). A workflow job: the same for the job of its
    /// failed node (one request more), else the workflow's own explanation.
    pub async fn failure(&self, job: &AapJob) -> Result<Option<JobFailure>, AapError> {
        let found = match job.kind {
            AapJobKind::Job => self.playbook_failure(job).await?,
            AapJobKind::Workflow => match self.failed_node_job(job.id).await? {
                Some(node_job) => self.playbook_failure(&node_job).await?,
                None => None,
            },
        };
        match found {
            Some(found) => Ok(Some(found)),
            None => self.explained_failure(job).await,
        }
    }

    /// A playbook job's failed host events, else its explanation or traceback.
    async fn playbook_failure(&self, job: &AapJob) -> Result<Option<JobFailure>, AapError> {
        let url = self.inner.http.url(
            &format!("jobs/{}/job_events/", job.id),
            &[
                ("failed", "true"),
                ("event__in", "runner_on_failed,runner_on_unreachable"),
                ("order_by", "-counter"),
                ("page_size", "5"),
            ],
        )?;
        let page: PageWire<failure::EventWire> = self.list_page(&url, job.kind).await?;
        match failure::from_events(&page.results) {
            Some(found) => Ok(Some(found)),
            None => self.explained_failure(job).await,
        }
    }

    /// The job a workflow's failed node ran, when it is a playbook job AAP still has.
    async fn failed_node_job(&self, workflow: u64) -> Result<Option<AapJob>, AapError> {
        let url = self.inner.http.url(
            &format!("workflow_jobs/{workflow}/workflow_nodes/"),
            &[
                ("job__failed", "true"),
                ("order_by", "-id"),
                ("page_size", "5"),
            ],
        )?;
        let page: PageWire<failure::NodeWire> = self.list_page(&url, AapJobKind::Workflow).await?;
        match failure::failed_node_job(&page.results) {
            Some(id) => self.get_job(AapJobKind::Job, id).await,
            None => Ok(None),
        }
    }

    /// The job's explanation, else the last line of its traceback.
    async fn explained_failure(&self, job: &AapJob) -> Result<Option<JobFailure>, AapError> {
        // Lists lack the traceback; the detail has it.
        let detail = match job.result_traceback.is_empty() && job.job_explanation.is_empty() {
            true => self.get_job(job.kind, job.id).await?,
            false => None,
        };
        let job = detail.as_ref().unwrap_or(job);
        Ok(failure::from_job(
            &job.job_explanation,
            &job.result_traceback,
        ))
    }

    /// A job's output as plain text (`jobs/{id}/stdout/?format=txt`, colour removed by
    /// AAP); `None` when AAP no longer has the job. AAP itself answers a short notice
    /// instead of output over its display limit (1 MB by default).
    pub async fn stdout(&self, id: u64) -> Result<Option<String>, AapError> {
        let url = self
            .inner
            .http
            .url(&format!("jobs/{id}/stdout/"), &[("format", "txt")])?;
        let answer = self.inner.http.get(&url).await?;
        match answer.status {
            StatusCode::OK => Ok(Some(String::from_utf8_lossy(&answer.body).into_owned())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(fail(answer, &format!("read the output of job {id}"))),
        }
    }

    /// One job; `None` when AAP no longer has it (purged).
    pub async fn get_job(&self, kind: AapJobKind, id: u64) -> Result<Option<AapJob>, AapError> {
        Ok(self
            .job_wire(kind, id)
            .await?
            .map(|w| AapJob::from_wire(kind, w)))
    }

    async fn job_wire(&self, kind: AapJobKind, id: u64) -> Result<Option<JobWire>, AapError> {
        let url = self
            .inner
            .http
            .url(&format!("{}/{id}/", kind.jobs_collection()), &[])?;
        let answer = self.inner.http.get(&url).await?;
        match answer.status {
            StatusCode::OK => decode(&answer).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(fail(answer, &format!("read {kind} {id}"))),
        }
    }

    async fn list_page<T: DeserializeOwned>(
        &self,
        url: &Url,
        kind: AapJobKind,
    ) -> Result<PageWire<T>, AapError> {
        let answer = self.inner.http.get(url).await?;
        if answer.status != StatusCode::OK {
            return Err(fail(answer, &format!("list {kind}s")));
        }
        decode(&answer)
    }

    /// Asks AAP to cancel a job: `GET .../cancel/` first, then at most one POST.
    pub async fn cancel(&self, kind: AapJobKind, id: u64) -> Result<CancelOutcome, AapError> {
        let url = self
            .inner
            .http
            .url(&format!("{}/{id}/cancel/", kind.jobs_collection()), &[])?;
        let answer = self.inner.http.get(&url).await?;
        match answer.status {
            StatusCode::OK => {}
            // AWX purges finished jobs only.
            StatusCode::NOT_FOUND => return Ok(CancelOutcome::AlreadyFinished),
            _ => {
                return Err(fail(
                    answer,
                    &format!("check whether {kind} {id} can be canceled"),
                ));
            }
        }
        let check: CanCancelWire = decode(&answer)?;
        if !check.can_cancel {
            tracing::debug!(job = id, ?kind, "AAP job can no longer be canceled");
            return Ok(CancelOutcome::AlreadyFinished);
        }
        let answer = self.inner.http.send(Method::POST, &url, None).await?;
        match answer.status {
            status if status.is_success() => {
                tracing::info!(job = id, ?kind, "requested cancel of AAP job");
                Ok(CancelOutcome::Requested)
            }
            // Finished between our GET and POST.
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => {
                Ok(CancelOutcome::AlreadyFinished)
            }
            _ => Err(fail(answer, &format!("cancel {kind} {id}"))),
        }
    }
}
