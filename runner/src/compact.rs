//! Instances as the runner's cache holds them: compressed JSON, decoded when reconciled.
//!
//! A typed instance costs about 2.8 KB of heap, most of it small strings, maps and vectors
//! (conditions, the job history, annotations), and the runner reads one only when it
//! reconciles it, which a settled instance seldom needs. So the cache holds its JSON
//! compressed with LZ4, beside the fields read without a reconcile: the name and namespace
//! the Controller keys on, and the AAP jobs the poller asks about.
//! `reconcile` decodes the whole instance, with the same serde types a status write and
//! its watch event already take it through, in a few microseconds.

use cloudkit_shared::ComputeInstance;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;
use serde::Deserialize;

use crate::aap::AapJobKind;
use crate::poller::aap_id;

/// What the JSON of instances has in common, for the compressor to refer back to: on its
/// own, LZ4 finds little to repeat in a kilobyte, while most of an instance is these keys
/// and values: a settled instance of 1,188 bytes compresses to 715 bytes without it, 341
/// with it. It only has to stay the same within one process.
const DICTIONARY: &[u8] = br#"{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"VirtualMachineNotFound","status":"False","type":"RestartInProgress"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"JobLaunched","status":"True","type":"Progressing"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"Provisioned","status":"True","type":"Available"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"Accepted","status":"True","type":"Accepted"}],"jobs":[{"jobID":"","type":"restart","state":"Succeeded","timestamp":"2026-01-01T00:00:00Z","startTime":"2026-01-01T00:00:00Z","finishTime":"2026-01-01T00:00:00Z","message":"Job succeeded","reason":"JobSucceeded","provider":"kubevirt","correlationKey":"","configVersion":"","requestedAt":"2026-01-01T00:00:00Z","vmiUID":"","url":"https://"},{"jobID":"","type":"deprovision","state":"Running","timestamp":"2026-01-01T00:00:00Z","provider":"aap-workflow","correlationKey":":deprovision:"},{"jobID":"","type":"provision","state":"Succeeded","timestamp":"2026-01-01T00:00:00Z","startTime":"2026-01-01T00:00:00Z","finishTime":"2026-01-01T00:00:00Z","message":"","provider":"aap","correlationKey":":provision:","configVersion":""}],"virtualMachineReference":{"kubeVirtVirtualMachineName":"","namespace":""},"tenantReference":{"name":"","namespace":""},"desiredConfigVersion":"","reconciledConfigVersion":"","lastRestartedAt":"2026-01-01T00:00:00Z","observedGeneration":1}}{"apiVersion":"cloudkit.openshift.io/v1alpha1","kind":"ComputeInstance","metadata":{"annotations":{"cloudkit.openshift.io/reconciled-config-version":""},"creationTimestamp":"2026-01-01T00:00:00Z","finalizers":["cloudkit.openshift.io/computeinstance"],"generation":1,"name":"","namespace":"","resourceVersion":"","uid":""},"spec":{"templateID":"","templateParameters":"{\"\":\"\"}"},"status":{"phase":"Running","conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"Provisioned","status":"True","type":"Available"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","reason":"JobSucceeded","status":"False","type":"Progressing"}],"jobs":[{"jobID":"","type":"provision","state":"Succeeded","timestamp":"2026-01-01T00:00:00Z","startTime":"2026-01-01T00:00:00Z","finishTime":"2026-01-01T00:00:00Z","message":"","provider":"aap","correlationKey":":provision:"}]"#;

/// A cached instance (see the module's text). `Deserialize` (through the typed instance)
/// only because kube's Controller asks it of the type it reconciles; the watch builds these
/// with [`CompactInstance::new`].
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "ComputeInstance")]
pub struct CompactInstance {
    /// Name and namespace only: kube keeps an `ObjectRef` with the UID and resourceVersion
    /// of each cached object and of each queued reconcile, and those read them from here.
    /// `reconcile` reads them from the decoded instance.
    metadata: ObjectMeta,
    /// The instance's JSON, LZ4-compressed, its length in front.
    body: Box<[u8]>,
    /// The AAP jobs of its history still running or pending in AAP.
    aap_jobs: Box<[(AapJobKind, u64)]>,
}

/// A cached instance that does not decode: a bug, since the runner encoded it itself.
#[derive(Debug, thiserror::Error)]
#[error(
    "the cached copy of the instance does not decode ({0}); it is read again on its next change"
)]
pub struct Undecodable(String);

impl From<ComputeInstance> for CompactInstance {
    fn from(ci: ComputeInstance) -> Self {
        Self::new(&ci)
    }
}

impl CompactInstance {
    pub fn new(ci: &ComputeInstance) -> Self {
        let json = serde_json::to_vec(ci).unwrap_or_default();
        let aap_jobs = ci
            .status
            .iter()
            .flat_map(|s| s.jobs.iter())
            .filter(|j| j.state.is_active())
            .filter_map(|j| aap_id(j.provider, j.job_id.as_deref()))
            .collect();
        let meta = &ci.metadata;
        Self {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                ..ObjectMeta::default()
            },
            body: lz4_flex::block::compress_prepend_size_with_dict(&json, DICTIONARY)
                .into_boxed_slice(),
            aap_jobs,
        }
    }

    /// The whole instance.
    pub fn instance(&self) -> Result<ComputeInstance, Undecodable> {
        let json = lz4_flex::block::decompress_size_prepended_with_dict(&self.body, DICTIONARY)
            .map_err(|e| Undecodable(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| Undecodable(e.to_string()))
    }

    /// The AAP jobs of its history still running or pending in AAP.
    pub fn aap_jobs(&self) -> &[(AapJobKind, u64)] {
        &self.aap_jobs
    }

    /// The bytes its body takes (for the tests' figures).
    #[cfg(test)]
    fn body_len(&self) -> usize {
        self.body.len()
    }
}

/// `impl Resource` for a type that holds part of a `ComputeInstance` in `metadata`: the
/// cached instance here and the one the watch parses (`instances::Stored`).
macro_rules! instance_resource {
    ($type:ty) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
                cloudkit_shared::ComputeInstance::kind(dt)
            }
            fn group(dt: &()) -> std::borrow::Cow<'_, str> {
                cloudkit_shared::ComputeInstance::group(dt)
            }
            fn version(dt: &()) -> std::borrow::Cow<'_, str> {
                cloudkit_shared::ComputeInstance::version(dt)
            }
            fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
                cloudkit_shared::ComputeInstance::plural(dt)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use instance_resource;

instance_resource!(CompactInstance);

/// A watch event of typed instances as one of cached ones.
pub fn event(event: watcher::Event<ComputeInstance>) -> watcher::Event<CompactInstance> {
    match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(ci) => watcher::Event::InitApply(CompactInstance::new(&ci)),
        watcher::Event::Apply(ci) => watcher::Event::Apply(CompactInstance::new(&ci)),
        watcher::Event::Delete(ci) => watcher::Event::Delete(CompactInstance::new(&ci)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::fixtures::{condition, instance, job, t};
    use cloudkit_shared::{ComputeInstanceStatus, JobState, JobType, Phase};
    use kube::ResourceExt;

    /// A provisioned instance with a restart running in AAP, as the runner writes them.
    fn settled() -> ComputeInstance {
        let at = t("2026-11-22T10:00:00Z");
        let mut provision = job(
            Some("41"),
            JobType::Provision,
            JobState::Succeeded,
            at.clone(),
        );
        provision.message = "Job succeeded".into();
        provision.start_time = Some(at.clone());
        provision.finish_time = Some(t("2026-11-22T10:03:07Z"));
        let deprovision = job(
            Some("42"),
            JobType::Deprovision,
            JobState::Running,
            t("2026-11-22T11:00:00Z"),
        );
        let mut ci = instance(
            "vm-1",
            ComputeInstanceStatus {
                phase: Some(Phase::Running),
                conditions: vec![
                    condition(
                        "Provisioned",
                        "True",
                        "JobSucceeded",
                        "provision job 41 succeeded",
                        at.clone(),
                    ),
                    condition(
                        "Available",
                        "True",
                        "VmiRunning",
                        "the VM is running",
                        at.clone(),
                    ),
                ],
                jobs: vec![deprovision, provision],
                desired_config_version: Some("3b1f0c".into()),
                reconciled_config_version: Some("3b1f0c".into()),
                ..Default::default()
            },
        );
        ci.metadata.namespace = Some("ns".into());
        ci.metadata.uid = Some("u1".into());
        ci.metadata.resource_version = Some("42".into());
        ci.metadata.finalizers = Some(vec!["cloudkit.openshift.io/computeinstance".into()]);
        ci.metadata.annotations = Some(
            [(
                "cloudkit.openshift.io/reconciled-config-version".to_string(),
                "3b1f0c".to_string(),
            )]
            .into(),
        );
        ci.spec.template_id = "ocp_virt_vm".into();
        ci.spec.template_parameters = Some(r#"{"cpu":2,"memory":"4Gi"}"#.into());
        ci
    }

    #[test]
    fn an_instance_decodes_as_it_was_with_its_keys_and_aap_jobs_beside() {
        let ci = settled();
        let compact = CompactInstance::new(&ci);
        assert_eq!(compact.instance().unwrap(), ci);
        assert_eq!(compact.aap_jobs(), [(AapJobKind::Job, 42)]);
        assert_eq!(compact.name_any(), ci.name_any());
        assert_eq!(compact.namespace(), ci.namespace());
        assert_eq!(
            compact.metadata,
            ObjectMeta {
                name: ci.metadata.name.clone(),
                namespace: ci.metadata.namespace.clone(),
                ..ObjectMeta::default()
            }
        );
        let json = serde_json::to_vec(&ci).unwrap().len();
        println!(
            "a settled instance: {json} bytes of JSON, {} compressed",
            compact.body_len()
        );
        assert!(compact.body_len() < json, "compressed");
    }

    #[test]
    fn what_the_dictionary_does_not_know_decodes_as_well() {
        let mut ci = settled();
        ci.spec.template_parameters = Some("ÿ✓ \"quoted\" ".repeat(500));
        ci.metadata.finalizers = None;
        ci.status = None;
        assert_eq!(CompactInstance::new(&ci).instance().unwrap(), ci);
        let bare = ComputeInstance::new("", Default::default());
        assert_eq!(CompactInstance::new(&bare).instance().unwrap(), bare);
    }
}
