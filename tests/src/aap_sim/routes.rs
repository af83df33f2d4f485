//! The URL patterns served, as AWX declares them: numeric ids only, trailing slash.

use axum::http::Method;

use super::config::JobKind;
use super::faults::Endpoint;

/// The API prefixes always served, besides the configured one.
pub(crate) const PREFIXES: [&str; 2] = ["/api/controller", "/api"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `{prefix}/`: AWX's ApiRootView, the list of API versions.
    ApiRoot,
    /// `{prefix}/v2/`: the list of top-level resources.
    Root,
    Ping,
    Config,
    OrganizationList,
    OrganizationDetail(u64),
    UnifiedTemplateList,
    TemplateList(JobKind),
    TemplateDetail(JobKind, u64),
    Launch(JobKind, u64),
    JobList(JobKind),
    /// `job_templates/{id}/jobs/`, `workflow_job_templates/{id}/workflow_jobs/`.
    TemplateJobs(JobKind, u64),
    JobDetail(JobKind, u64),
    Cancel(JobKind, u64),
    Stdout(u64),
    /// `jobs/{id}/job_events/`.
    JobEvents(u64),
    /// `workflow_jobs/{id}/workflow_nodes/`.
    WorkflowNodes(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Matched {
    pub(crate) route: Route,
    /// False when the path lacks its trailing slash: the answer is a redirect.
    pub(crate) slash: bool,
}

/// Matches `path` against `{prefix}/v2/...` for each prefix.
pub(crate) fn parse(path: &str, configured: &str) -> Option<Matched> {
    let mut prefixes = vec![configured];
    prefixes.extend(PREFIXES.iter().filter(|p| **p != configured));
    // Longest first, so `/api/controller/v2/` is not read as `/api/` + `controller/...`.
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    prefixes.into_iter().find_map(|prefix| {
        let rest = path.strip_prefix(prefix)?;
        match rest {
            "" | "/" => {
                return Some(Matched {
                    route: Route::ApiRoot,
                    slash: !rest.is_empty(),
                });
            }
            _ => {}
        }
        let rest = rest.strip_prefix("/v2")?;
        if rest.is_empty() {
            return Some(Matched {
                route: Route::Root,
                slash: false,
            });
        }
        let rest = rest.strip_prefix('/')?;
        let (rest, slash) = match rest.strip_suffix('/') {
            Some(r) => (r, true),
            None if rest.is_empty() => (rest, true),
            None => (rest, false),
        };
        let segments: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        route(&segments).map(|route| Matched { route, slash })
    })
}

fn id(segment: &str) -> Option<u64> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

fn route(segments: &[&str]) -> Option<Route> {
    let template_kind = |s: &str| match s {
        "job_templates" => Some(JobKind::Job),
        "workflow_job_templates" => Some(JobKind::Workflow),
        _ => None,
    };
    let job_kind = |s: &str| match s {
        "jobs" => Some(JobKind::Job),
        "workflow_jobs" => Some(JobKind::Workflow),
        _ => None,
    };
    Some(match segments {
        [] => Route::Root,
        ["ping"] => Route::Ping,
        ["config"] => Route::Config,
        ["organizations"] => Route::OrganizationList,
        ["organizations", n] => Route::OrganizationDetail(id(n)?),
        ["unified_job_templates"] => Route::UnifiedTemplateList,
        [t] => match template_kind(t) {
            Some(kind) => Route::TemplateList(kind),
            None => Route::JobList(job_kind(t)?),
        },
        [t, n] => match template_kind(t) {
            Some(kind) => Route::TemplateDetail(kind, id(n)?),
            None => Route::JobDetail(job_kind(t)?, id(n)?),
        },
        [t, n, "launch"] => Route::Launch(template_kind(t)?, id(n)?),
        ["job_templates", n, "jobs"] => Route::TemplateJobs(JobKind::Job, id(n)?),
        ["workflow_job_templates", n, "workflow_jobs"] => {
            Route::TemplateJobs(JobKind::Workflow, id(n)?)
        }
        [t, n, "cancel"] => Route::Cancel(job_kind(t)?, id(n)?),
        ["jobs", n, "stdout"] => Route::Stdout(id(n)?),
        ["jobs", n, "job_events"] => Route::JobEvents(id(n)?),
        ["workflow_jobs", n, "workflow_nodes"] => Route::WorkflowNodes(id(n)?),
        _ => return None,
    })
}

impl Route {
    pub(crate) fn endpoint(self, method: &Method) -> Endpoint {
        match self {
            // OPTIONS is metadata, not the resource: it is kept out of the resource's counters.
            _ if method == Method::OPTIONS => Endpoint::Other,
            Route::TemplateList(_) | Route::TemplateDetail(..) | Route::UnifiedTemplateList => {
                Endpoint::TemplateLookup
            }
            Route::Launch(..) => Endpoint::Launch,
            Route::JobList(_) | Route::TemplateJobs(..) => Endpoint::JobList,
            Route::JobDetail(..) | Route::WorkflowNodes(_) => Endpoint::JobDetail,
            Route::Cancel(..) if method == Method::POST => Endpoint::Cancel,
            Route::Cancel(..) => Endpoint::CancelCheck,
            Route::Stdout(_) | Route::JobEvents(_) => Endpoint::Stdout,
            Route::ApiRoot
            | Route::Root
            | Route::Ping
            | Route::Config
            | Route::OrganizationList
            | Route::OrganizationDetail(_) => Endpoint::Other,
        }
    }

    /// The methods served, in DRF's order: the `Allow` header of every answer (DRF sends
    /// it on all of them, a 405 included) and the only methods [`Route::handles`] admits.
    pub(crate) fn allow(self) -> &'static str {
        match self {
            Route::Launch(..) | Route::Cancel(..) => "GET, POST, HEAD, OPTIONS",
            Route::JobDetail(..) => "GET, DELETE, HEAD, OPTIONS",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    pub(crate) fn handles(self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// Who may call it: AWX's permission classes. `AllowAny` views (the roots) still run
    /// authentication when credentials are sent; ping runs none at all.
    pub(crate) fn permission(self) -> Permission {
        match self {
            Route::Ping => Permission::Public,
            Route::ApiRoot | Route::Root => Permission::AllowAny,
            _ => Permission::Authenticated,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permission {
    /// No authentication at all (`authentication_classes = ()`).
    Public,
    /// Anonymous requests pass; credentials that are sent must be valid.
    AllowAny,
    Authenticated,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_both_prefixes_and_ids_only() {
        let m = parse("/api/controller/v2/jobs/12/", "/api/controller").unwrap();
        assert_eq!(m.route, Route::JobDetail(JobKind::Job, 12));
        assert!(m.slash);
        let m = parse("/api/v2/workflow_jobs/3/cancel", "/api/controller").unwrap();
        assert_eq!(m.route, Route::Cancel(JobKind::Workflow, 3));
        assert!(!m.slash);
        assert!(parse("/api/v2/job_templates/my%20template/launch/", "/api").is_none());
        assert!(parse("/api/v2/workflow_jobs/3/stdout/", "/api").is_none());
        assert_eq!(
            parse("/api/v2/", "/api").unwrap(),
            Matched {
                route: Route::Root,
                slash: true
            }
        );
        assert_eq!(
            parse("/custom/v2/ping/", "/custom").unwrap().route,
            Route::Ping
        );
        let root = parse("/api/controller/", "/api/controller").unwrap();
        assert_eq!((root.route, root.slash), (Route::ApiRoot, true));
        let root = parse("/api", "/api/controller").unwrap();
        assert_eq!((root.route, root.slash), (Route::ApiRoot, false));
        assert!(parse("/api/controllers/", "/api/controller").is_none());
        assert_eq!(
            parse("/api/v2/organizations/1/", "/api").unwrap().route,
            Route::OrganizationDetail(1)
        );
    }

    #[test]
    fn allow_lists_exactly_the_handled_methods() {
        let launch = Route::Launch(JobKind::Job, 1);
        assert!(launch.handles(&Method::POST) && launch.handles(&Method::OPTIONS));
        assert!(!Route::JobList(JobKind::Job).handles(&Method::POST));
        assert!(Route::JobDetail(JobKind::Job, 1).handles(&Method::DELETE));
    }
}
