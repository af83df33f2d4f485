//! The runner's job-logs API on a bed: the APIService and an ExternalName Service that
//! kube-apiserver resolves to `https://localhost:<port>` (the bed has no pods and no
//! kube-proxy), where the runner listens. The APIService is the shipped one
//! (manifests/logs/apiservice.yaml) pointed at that Service.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams};

use crate::bed::Bed;

pub const APISERVICE: &str = "v1alpha1.logs.cloudkit.openshift.io";
const SERVICE: &str = "cloudkit-runner-logs";

/// Creates the Service and APIService (no caBundle: the runner writes it) and returns
/// the runner settings that serve the API on a free loopback port.
pub async fn install(bed: &Bed) -> anyhow::Result<Vec<(String, String)>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let apply = PatchParams::apply("cloudkit-testbed").force();
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": bed.namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
    }))?;
    Api::<Service>::namespaced(bed.client.clone(), &bed.namespace)
        .patch(SERVICE, &apply, &Patch::Apply(&service))
        .await?;
    // The shipped APIService, pointed at this bed's Service.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/logs/apiservice.yaml");
    let mut apiservice: APIService = serde_saphyr::from_str(&std::fs::read_to_string(&shipped)?)?;
    let target = apiservice
        .spec
        .as_mut()
        .and_then(|s| s.service.as_mut())
        .ok_or_else(|| anyhow::anyhow!("{} names no Service", shipped.display()))?;
    target.namespace = Some(bed.namespace.clone());
    target.name = Some(SERVICE.into());
    target.port = Some(port.into());
    Api::<APIService>::all(bed.client.clone())
        .patch(APISERVICE, &apply, &Patch::Apply(&apiservice))
        .await?;
    Ok(vec![(
        "CLOUDKIT_LOGS_ADDR".to_string(),
        format!("127.0.0.1:{port}"),
    )])
}

/// Waits until kube-apiserver reports the APIService Available (it probes the runner's
/// discovery over mTLS); fails with the condition's message.
pub async fn wait_available(bed: &Bed, timeout: Duration) -> anyhow::Result<()> {
    let api = Api::<APIService>::all(bed.client.clone());
    let available = |svc: &APIService| {
        svc.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .cloned()
    };
    let waited = bed
        .wait_until("the logs APIService to become Available", timeout, || {
            let api = api.clone();
            async move {
                let svc = api.get(APISERVICE).await?;
                Ok(available(&svc).filter(|c| c.status == "True").map(|_| ()))
            }
        })
        .await;
    if let Err(e) = waited {
        let cond = available(&api.get(APISERVICE).await?);
        anyhow::bail!(
            "{e}
last Available condition: {cond:?}"
        );
    }
    Ok(())
}
