//! `kubectl cloudkit logs NAME [--job ID] [--tail N] [--follow]`: the AAP output of an
//! instance's job, through the runner's aggregated API. kube-apiserver checks RBAC
//! (`get` on `computeinstances/log` in `logs.cloudkit.openshift.io`) before the request
//! reaches the runner; no AAP credentials are needed here.

use futures::AsyncBufReadExt;
use http::Request;

use crate::cli::LogsArgs;
use crate::client::Target;
use crate::error::Error;
use crate::output::Output;

const APISERVICE: &str = "v1alpha1.logs.cloudkit.openshift.io";

pub async fn run(target: &Target, args: &LogsArgs, out: &Output) -> Result<(), Error> {
    let request = Request::get(path(target, args))
        .body(Vec::new())
        .map_err(|e| Error::Usage(format!("cannot build the logs request: {e}")))?;
    if !args.follow {
        let text = target
            .client
            .request_text(request)
            .await
            .map_err(|e| error(target, &args.name, e))?;
        return out.data(&text);
    }
    let mut body = target
        .client
        .request_stream(request)
        .await
        .map_err(|e| error(target, &args.name, e))?;
    // Whole chunks as they arrive: a line shows as soon as AAP has it.
    loop {
        let chunk = body
            .fill_buf()
            .await
            .map_err(|e| Error::Failed(format!("the logs stream of {:?} broke: {e}", args.name)))?;
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len();
        out.data(&String::from_utf8_lossy(chunk))?;
        body.consume_unpin(n);
    }
}

fn path(target: &Target, args: &LogsArgs) -> String {
    let mut query = Vec::new();
    if let Some(job) = &args.job {
        query.push(format!("job={}", encode(job)));
    }
    if let Some(n) = args.tail {
        query.push(format!("tail={n}"));
    }
    if args.follow {
        query.push("follow=true".into());
    }
    let mut path = format!(
        "/apis/logs.cloudkit.openshift.io/v1alpha1/namespaces/{}/computeinstances/{}/log",
        encode(&target.namespace),
        encode(&args.name)
    );
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    path
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error(target: &Target, name: &str, err: kube::Error) -> Error {
    let kube::Error::Api(status) = err else {
        return Error::Unreachable {
            server: target.server.clone(),
            cause: err.to_string(),
        };
    };
    let message = status.message.trim();
    Error::Failed(match status.code {
        403 => format!(
            "Error from server (Forbidden): {message} (the ClusterRole cloudkit-logs, aggregated to view, grants it)"
        ),
        // The aggregator answers 503 while the runner's API is unreachable or unproven.
        503 if message.contains("service unavailable") || message.is_empty() => format!(
            "the runner's logs API is not reachable (503 from the API server): check `kubectl get apiservice {APISERVICE}` and the runner's log"
        ),
        // No such APIService: the path is unknown to the API server.
        404 if !message.contains(name) || message.contains("page not found") => format!(
            "the cluster has no cloudkit logs API (APIService {APISERVICE}): install manifests/logs"
        ),
        _ => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encoding_keeps_names_and_escapes_the_rest() {
        assert_eq!(encode("vm-1.a"), "vm-1.a");
        assert_eq!(encode("1&x=2"), "1%26x%3D2");
    }
}
