//! Installs the CRDs the tests need: the project's own (`crds/`) and the KubeVirt
//! stand-ins (`tests/crds/`), and waits until the API server serves them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use super::Error;

const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// Directories whose `*.yaml` files are installed, in this order.
pub fn dirs() -> Vec<PathBuf> {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![tests.join("../crds"), tests.join("crds")]
}

/// Every CRD in every `*.yaml` file of `dirs` (a missing directory has none).
pub fn read(dirs: &[PathBuf]) -> Result<Vec<CustomResourceDefinition>, Error> {
    let mut crds = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for path in files {
            crds.extend(read_file(&path)?);
        }
    }
    Ok(crds)
}

/// Every CRD in one YAML file.
pub fn read_file(path: &Path) -> Result<Vec<CustomResourceDefinition>, Error> {
    let err = |message: String| Error::CrdFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| err(e.to_string()))?;
    let mut crds = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        if document["kind"] != "CustomResourceDefinition" {
            return Err(err(format!(
                "expected only CustomResourceDefinitions, found kind {}",
                document["kind"]
            )));
        }
        crds.push(serde_json::from_value(document).map_err(|e| err(e.to_string()))?);
    }
    Ok(crds)
}

/// Server-side applies each CRD, then waits until all are Established.
pub async fn install(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("cloudkit-testbed").force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|source| Error::CrdApply {
                name: name.clone(),
                source,
            })?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Error::CrdNotEstablished {
                    name,
                    timeout: ESTABLISHED_TIMEOUT,
                    detail: format!(": {e}"),
                });
            }
            Err(_) => {
                // Say why, if the server said: NamesAccepted=False names a conflict.
                let detail = api
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .map(|conds| {
                        conds
                            .iter()
                            .map(|c| {
                                format!(
                                    "{}={} {}",
                                    c.type_,
                                    c.status,
                                    c.message.as_deref().unwrap_or("")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .map(|s| format!(" (conditions: {s})"))
                    .unwrap_or_default();
                return Err(Error::CrdNotEstablished {
                    name,
                    timeout: ESTABLISHED_TIMEOUT,
                    detail,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_crds_parse() {
        let crds = read(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")]).unwrap();
        let names: Vec<_> = crds
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "virtualmachines.kubevirt.io",
                "virtualmachineinstances.kubevirt.io",
                "userdefinednetworks.k8s.ovn.org"
            ]
        );
        for crd in &crds {
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1");
            assert!(version.subresources.as_ref().unwrap().status.is_some());
        }
    }
}
