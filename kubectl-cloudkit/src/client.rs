//! The API client: kubeconfig (several `KUBECONFIG` paths merged), context, namespace, and
//! the few calls the plugin makes on `ComputeInstance`s, with errors worded for people.

use cloudkit_shared::ComputeInstance;
use cloudkit_shared::names::PLUGIN_FIELD_MANAGER;
use cloudkit_shared::read;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config, Resource};

use crate::cli::GlobalArgs;
use crate::error::{Error, Op};

/// A client bound to the namespace the user meant.
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The API server URL, named in connection errors.
    pub server: String,
}

/// Builds the client the way kubectl would from the same flags and environment.
pub async fn connect(args: &GlobalArgs) -> Result<Target, Error> {
    let config = load_config(args).await?;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| {
        Op {
            verb: "connect to",
            namespace: None,
            name: None,
            server: &server,
        }
        .error(e)
    })?;
    Ok(Target {
        client,
        namespace,
        server,
    })
}

async fn load_config(args: &GlobalArgs) -> Result<Config, Error> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        // $KUBECONFIG (every path, merged by kubectl's rules), else ~/.kube/config.
        None => Kubeconfig::read(),
    };
    match kubeconfig {
        Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| kubeconfig_error(&e, args)),
        // Inside a pod with no kubeconfig at all, use the service account, as kubectl does.
        Err(e)
            if args.kubeconfig.is_none()
                && args.context.is_none()
                && std::env::var_os("KUBECONFIG").is_none()
                && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
        {
            Config::incluster().map_err(|_| kubeconfig_error(&e, args))
        }
        Err(e) => Err(kubeconfig_error(&e, args)),
    }
}

fn kubeconfig_error(e: &KubeconfigError, args: &GlobalArgs) -> Error {
    let text = match e {
        KubeconfigError::CurrentContextNotSet => {
            "no current-context is set: pass --context NAME".to_string()
        }
        KubeconfigError::LoadContext(name) => {
            format!("context {name:?} not found (kubectl config get-contexts lists them)")
        }
        KubeconfigError::LoadClusterOfContext(name) => {
            format!("cluster {name:?} of the context is not in the kubeconfig")
        }
        KubeconfigError::ReadConfig(source, path) => {
            let hint = if args.kubeconfig.is_some() {
                ""
            } else {
                "; set KUBECONFIG or pass --kubeconfig"
            };
            format!("cannot read {}: {source}{hint}", path.display())
        }
        other => other.to_string(),
    };
    Error::Kubeconfig(text)
}

/// `ComputeInstance` calls in one namespace (or all).
pub struct Instances<'a> {
    pub target: &'a Target,
    /// `None`: every namespace.
    pub namespace: Option<&'a str>,
    api: Api<ComputeInstance>,
}

impl<'a> Instances<'a> {
    pub fn namespaced(target: &'a Target) -> Self {
        Self {
            target,
            namespace: Some(&target.namespace),
            api: Api::namespaced(target.client.clone(), &target.namespace),
        }
    }

    pub fn all(target: &'a Target) -> Self {
        Self {
            target,
            namespace: None,
            api: Api::all(target.client.clone()),
        }
    }

    pub fn api(&self) -> &Api<ComputeInstance> {
        &self.api
    }

    pub fn op(&self, verb: &'static str, name: Option<&'a str>) -> Op<'a> {
        Op {
            verb,
            namespace: self.namespace,
            name,
            server: &self.target.server,
        }
    }

    /// Read untyped and decoded here, so an object this version cannot read is named with
    /// its field instead of failing as a JSON error.
    fn raw(&self) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<ComputeInstance>(&());
        match self.namespace {
            Some(ns) => Api::namespaced_with(self.target.client.clone(), ns, &resource),
            None => Api::all_with(self.target.client.clone(), &resource),
        }
    }

    pub async fn get(&self, name: &'a str) -> Result<ComputeInstance, Error> {
        let obj = self
            .raw()
            .get(name)
            .await
            .map_err(|e| self.op("get", Some(name)).error(e))?;
        read::instance(obj).map_err(Error::Unreadable)
    }

    /// Every instance (all pages), sorted by namespace and name like kubectl. Objects that
    /// cannot be read are left out with a warning on stderr that names the field.
    pub async fn list(&self, selector: Option<&str>) -> Result<Vec<ComputeInstance>, Error> {
        let mut params = ListParams::default().limit(500);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        // Requested and decoded here, not by `Api::list`: kube's list type buffers every
        // page whole before decoding it, managedFields included (`read::page`).
        let path = ComputeInstance::url_path(&(), self.namespace);
        let mut items = Vec::new();
        loop {
            let request = kube::core::Request::new(&path)
                .list(&params)
                .map_err(|e| Error::Usage(format!("cannot build the list request: {e}")))?;
            let body = self
                .target
                .client
                .request_text(request)
                .await
                .map_err(|e| self.op("list", None).error(e))?;
            let page = read::page(&body).map_err(|e| {
                Error::Failed(format!(
                    "the API server's list of computeinstances is not a list ({e}); is {} a Kubernetes API server?",
                    self.target.server
                ))
            })?;
            for item in page.items {
                match item {
                    Ok(ci) => items.push(ci),
                    Err(e) => eprintln!(
                        "warning: {e}; fix the field (kubectl edit) so cloudkit can read it"
                    ),
                }
            }
            match page.continue_token {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        items.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        Ok(items)
    }

    /// Writes one signal (`spec.<field>`) with a JSON merge patch as the plugin's field manager.
    pub async fn write_signal(
        &self,
        name: &'a str,
        field: &str,
        at: k8s_openapi::jiff::Timestamp,
    ) -> Result<ComputeInstance, Error> {
        let patch = serde_json::json!({ "spec": { field: crate::render::timestamp(at) } });
        let params = PatchParams {
            field_manager: Some(PLUGIN_FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        self.api
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| self.op("patch", Some(name)).error(e))
    }
}
