//! The plugin's errors: each prints as one line that says what to do next.

use cloudkit_shared::signals::TimeError;

/// Exit code for errors in how the plugin was called (clap uses the same).
pub const USAGE_EXIT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("computeinstance {name:?} not found in namespace {namespace:?}")]
    NotFound { name: String, namespace: String },

    #[error(
        "forbidden: {who} cannot {verb} computeinstances{scope}; the ClusterRole {role} (manifests/) grants it: {grant}"
    )]
    Forbidden {
        who: String,
        verb: &'static str,
        scope: String,
        role: &'static str,
        /// The command an administrator runs to grant it.
        grant: String,
    },

    #[error(
        "the ComputeInstance CRD is not installed on {server}: kubectl apply -f crds/ (or check --context)"
    )]
    CrdMissing { server: String },

    #[error(
        "cannot reach the cluster at {server}: {cause} (check --context / --kubeconfig / KUBECONFIG)"
    )]
    Unreachable { server: String, cause: String },

    #[error(
        "the cluster at {server} rejected the credentials in your kubeconfig (401 Unauthorized): log in again or pick another --context"
    )]
    Unauthorized { server: String },

    #[error("kubeconfig: {0}")]
    Kubeconfig(String),

    #[error("cannot {verb} computeinstance{target}: {message}")]
    Api {
        verb: &'static str,
        target: String,
        message: String,
    },

    #[error("{0}; fix the field (kubectl edit) so cloudkit can read it")]
    Unreadable(Box<cloudkit_shared::read::Unreadable>),

    #[error("{0}")]
    Time(#[from] TimeError),

    #[error("{0}")]
    Usage(String),

    #[error(
        "timed out after {after} waiting for {what}; last seen: {last} (is the cloudkit runner running?)"
    )]
    Timeout {
        after: String,
        what: String,
        last: String,
    },

    #[error("{0}")]
    Failed(String),

    #[error("cannot render output: {0}")]
    Render(String),

    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// 2 for a wrong call, 1 for everything else (0 is success only).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Time(_) => USAGE_EXIT,
            _ => 1,
        }
    }

    /// A closed pipe (`| head`) is not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// What the plugin was doing when the API server answered, to word the error.
#[derive(Clone, Copy, Debug)]
pub struct Op<'a> {
    /// The Kubernetes verb: get, list, watch, patch.
    pub verb: &'static str,
    /// `None` for cluster-wide (`-A`) calls.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub server: &'a str,
}

impl Op<'_> {
    /// Maps a kube-rs error to the one-line error a person can act on.
    pub fn error(&self, err: kube::Error) -> Error {
        match err {
            kube::Error::Api(status) => self.status_error(status.code, &status.message, || {
                status.details.as_ref().is_some_and(|d| !d.name.is_empty())
            }),
            kube::Error::InferKubeconfig(e) => Error::Kubeconfig(e.to_string()),
            kube::Error::Auth(e) => Error::Kubeconfig(format!("cannot authenticate: {e}")),
            other @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => Error::Unreachable {
                server: self.server.to_string(),
                cause: root_cause(&other),
            },
            other => Error::Api {
                verb: self.verb,
                target: self.target(),
                message: root_cause(&other),
            },
        }
    }

    /// `names_an_object`: the 404 names the missing object (else the resource type is unknown).
    fn status_error(&self, code: u16, message: &str, names_an_object: impl Fn() -> bool) -> Error {
        match code {
            404 if self.name.is_some() && names_an_object() => Error::NotFound {
                name: self.name.unwrap_or_default().to_string(),
                namespace: self.namespace.unwrap_or_default().to_string(),
            },
            // The group/version/resource itself is unknown to the server.
            404 => Error::CrdMissing {
                server: self.server.to_string(),
            },
            403 => {
                let user = quoted_after(message, "User ");
                let who = user.map_or_else(|| "you".to_string(), |u| format!("User {u:?}"));
                let role = if self.verb == "patch" {
                    "cloudkit-edit"
                } else {
                    "cloudkit-view"
                };
                let user_flag = format!("--user={}", user.unwrap_or("<you>"));
                let (scope, grant) = match self.namespace {
                    Some(ns) => (
                        format!(" in namespace {ns:?}"),
                        format!(
                            "kubectl create rolebinding <name> --clusterrole={role} {user_flag} -n {ns}"
                        ),
                    ),
                    None => (
                        " in all namespaces".to_string(),
                        format!(
                            "kubectl create clusterrolebinding <name> --clusterrole={role} {user_flag}"
                        ),
                    ),
                };
                Error::Forbidden {
                    who,
                    verb: self.verb,
                    scope,
                    role,
                    grant,
                }
            }
            401 => Error::Unauthorized {
                server: self.server.to_string(),
            },
            _ => Error::Api {
                verb: self.verb,
                target: self.target(),
                message: if message.is_empty() {
                    format!("the API server answered {code}")
                } else {
                    message.to_string()
                },
            },
        }
    }

    fn target(&self) -> String {
        match (self.name, self.namespace) {
            (Some(n), Some(ns)) => format!(" {n:?} in namespace {ns:?}"),
            (Some(n), None) => format!(" {n:?}"),
            (None, Some(ns)) => format!("s in namespace {ns:?}"),
            (None, None) => "s".to_string(),
        }
    }

    /// A watch error that will not heal by retrying (RBAC, CRD gone), as an `Error`.
    pub fn watch_error(&self, err: kube::runtime::watcher::Error) -> Option<Error> {
        use kube::runtime::watcher::Error as W;
        let fatal =
            |e: &kube::Error| matches!(e, kube::Error::Api(s) if matches!(s.code, 401 | 403 | 404));
        match err {
            W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) if fatal(&e) => {
                Some(self.error(e))
            }
            W::WatchError(s) if matches!(s.code, 401 | 403 | 404) => {
                Some(self.error(kube::Error::Api(s)))
            }
            _ => None,
        }
    }
}

/// The innermost cause, which is the part that says what went wrong (refused, DNS, TLS).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `User "nobody" cannot …` → `nobody`.
fn quoted_after<'m>(message: &'m str, marker: &str) -> Option<&'m str> {
    let start = message.find(marker)? + marker.len();
    let rest = message[start..].strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<'a>(verb: &'static str, ns: Option<&'a str>, name: Option<&'a str>) -> Op<'a> {
        Op {
            verb,
            namespace: ns,
            name,
            server: "https://127.0.0.1:6443",
        }
    }

    #[test]
    fn not_found_names_instance_and_namespace() {
        let e = op("get", Some("ns1"), Some("vm-1")).status_error(404, "", || true);
        assert_eq!(
            e.to_string(),
            r#"computeinstance "vm-1" not found in namespace "ns1""#
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn unknown_resource_means_no_crd() {
        let e = op("get", Some("ns1"), Some("vm-1")).status_error(
            404,
            "the server could not find the requested resource",
            || false,
        );
        assert_eq!(
            e.to_string(),
            "the ComputeInstance CRD is not installed on https://127.0.0.1:6443: kubectl apply -f crds/ (or check --context)"
        );
        let e = op("list", None, None).status_error(404, "", || false);
        assert!(matches!(e, Error::CrdMissing { .. }));
    }

    #[test]
    fn forbidden_says_which_verb_and_which_role() {
        let message = r#"computeinstances.cloudkit.openshift.io "vm-1" is forbidden: User "nobody" cannot patch resource "computeinstances" in API group "cloudkit.openshift.io" in the namespace "ns1""#;
        let e = op("patch", Some("ns1"), Some("vm-1")).status_error(403, message, || true);
        assert_eq!(
            e.to_string(),
            r#"forbidden: User "nobody" cannot patch computeinstances in namespace "ns1"; the ClusterRole cloudkit-edit (manifests/) grants it: kubectl create rolebinding <name> --clusterrole=cloudkit-edit --user=nobody -n ns1"#
        );
        let e = op("list", None, None).status_error(403, "", || false);
        let text = e.to_string();
        assert!(
            text.contains("you cannot list computeinstances in all namespaces"),
            "{text}"
        );
        assert!(text.contains("cloudkit-view"), "{text}");
    }

    #[test]
    fn other_statuses_keep_the_server_message() {
        let e = op("patch", Some("ns"), Some("a")).status_error(422, "bad field", || true);
        assert_eq!(
            e.to_string(),
            r#"cannot patch computeinstance "a" in namespace "ns": bad field"#
        );
        let e = op("list", Some("ns"), None).status_error(500, "", || false);
        assert_eq!(
            e.to_string(),
            r#"cannot list computeinstances in namespace "ns": the API server answered 500"#
        );
        let e = op("get", Some("ns"), None).status_error(401, "", || false);
        assert!(e.to_string().contains("401 Unauthorized"));
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        let t = cloudkit_shared::signals::parse_timestamp("soon").unwrap_err();
        assert_eq!(Error::from(t).exit_code(), 2);
    }

    #[test]
    fn errors_are_one_line() {
        let e = Error::Timeout {
            after: "10m".into(),
            what: "the restart".into(),
            last: "restart job Running".into(),
        };
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn user_is_read_from_the_message() {
        assert_eq!(
            quoted_after(r#"x: User "a b" cannot"#, "User "),
            Some("a b")
        );
        assert_eq!(quoted_after("nothing here", "User "), None);
    }
}
