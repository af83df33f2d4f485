//! A real kube-apiserver + etcd for tests, the way controller-runtime's envtest does it,
//! plus kube-controller-manager with two controllers.
//!
//! The servers are built from the Go module in `tests/controlplane` (pinned releases,
//! from the Go module proxy) on first use and cached outside the work tree, then
//! started on free loopback ports with a throw-away data directory and fresh
//! certificates. CRD validation, the status subresource, finalizers, conflicts and
//! RBAC are therefore the real ones, and so are namespace deletion and garbage
//! collection by ownerReferences (the controller-manager runs only those two
//! controllers). What does not run: the other controllers (service accounts and their
//! tokens, ClusterRole aggregation, workloads...), no scheduler, no kubelet.
//!
//! ```no_run
//! # async fn example() -> Result<(), cloudkit_testbed::control_plane::Error> {
//! use cloudkit_testbed::control_plane::ControlPlane;
//! // Started once per test binary; each test gets its own client and namespace.
//! let cp = ControlPlane::shared().await?;
//! let client = cp.client().await?;
//! let ns = cp.test_namespace("restart").await?;
//! let alice = cp.client_as("alice").await?; // no roles: 403 everywhere
//! let kubeconfig = cp.kubeconfig_for("alice")?; // for kubectl and the plugin
//! # let _ = (client, ns, alice, kubeconfig);
//! # Ok(()) }
//! ```
//!
//! Identities are client certificates signed by the control plane's client CA (CN =
//! user, O = group), minted on demand: any user name works, with at most one group.
//! The administrator is [`ADMIN_USER`] in `system:masters`.
//!
//! Cache: `$CLOUDKIT_TESTBED_CACHE`, else `$XDG_CACHE_HOME/cloudkit-testbed`, else
//! `~/.cache/cloudkit-testbed`; binaries go into a directory named for the versions.

mod binaries;
mod controller_manager;
pub mod crds;
mod error;
mod kubeconfig;
mod pki;
mod process;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use tempfile::TempDir;

pub use binaries::{
    ETCD_VERSION, GoBuild, GoBuildError, KUBERNETES_VERSION, build_once, cache_root, go_module_dir,
    last_lines,
};
pub use error::Error;
pub(crate) use process::spawn_tied;

use pki::Pki;
use process::ServerProcess;

/// The administrator: in `system:masters`, so RBAC lets it do anything.
pub const ADMIN_USER: &str = "cloudkit-testbed-admin";
const ADMIN_GROUP: &str = "system:masters";

/// Generous: two cores may be busy compiling while a test starts the server.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Free ports are found by binding port 0 and letting go, so another process can
/// take one before the server binds it; such a start is retried.
const START_ATTEMPTS: usize = 3;
const LOG_LINES: usize = 50;

/// A running kube-apiserver + etcd pair and the kube-controller-manager. All are killed
/// when this is dropped.
pub struct ControlPlane {
    server_url: String,
    pki: Pki,
    dir: PathBuf,
    admin_kubeconfig: PathBuf,
    kubeconfig_count: AtomicU64,
    running: Mutex<Option<Running>>,
    /// How the API server and etcd were started, so a test can restart them.
    apiserver_command: (PathBuf, Vec<String>),
    etcd_command: (PathBuf, Vec<String>),
}

/// Field order is drop order: the controller-manager, the API server, its etcd, the
/// directory last.
struct Running {
    /// Started last, once the CRDs are served, so that the garbage collector's first
    /// discovery sees them (it looks again only every 30 s).
    controller_manager: Option<ServerProcess>,
    apiserver: ServerProcess,
    etcd: ServerProcess,
    _dir: TempDir,
}

impl Running {
    fn log_tails(&self) -> String {
        let mut tails = format!(
            "{}\n{}",
            self.etcd.log_tail(LOG_LINES),
            self.apiserver.log_tail(LOG_LINES)
        );
        if let Some(controller_manager) = &self.controller_manager {
            tails.push('\n');
            tails.push_str(&controller_manager.log_tail(LOG_LINES));
        }
        tails
    }
}

/// A server the tests may restart.
#[derive(Clone, Copy)]
enum Server {
    ApiServer,
    Etcd,
}

impl Server {
    fn process(self, running: &mut Running) -> &mut ServerProcess {
        match self {
            Server::ApiServer => &mut running.apiserver,
            Server::Etcd => &mut running.etcd,
        }
    }
}

static SHARED: tokio::sync::OnceCell<Result<ControlPlane, String>> =
    tokio::sync::OnceCell::const_new();

impl ControlPlane {
    /// Starts a new control plane for the caller alone (builds the binaries first if
    /// they are not cached), installs the CRDs and waits until they are served.
    pub async fn start() -> Result<Self, Error> {
        let binaries = tokio::task::spawn_blocking(binaries::ensure)
            .await
            .expect("the binary build task panicked")?;
        let crds = crds::read(&crds::dirs())?;
        sweep_stale_dirs();
        let mut attempt = 1;
        loop {
            match Self::start_once(&binaries, &crds).await {
                Err(Error::Exited { logs, .. })
                    if attempt < START_ATTEMPTS && logs.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// The control plane shared by every test in this test binary, started on first
    /// call. Each `#[tokio::test]` has its own runtime, so this holds no client: ask
    /// for one per test with [`ControlPlane::client`]. Stopped when the process exits.
    pub async fn shared() -> Result<&'static Self, Error> {
        // The caller that tried the start gets its error as is; later callers get
        // its message (errors are not Clone), not a second attempt.
        let mut own_error = None;
        let result = SHARED
            .get_or_init(|| async {
                match Self::start().await {
                    Ok(cp) => {
                        // Statics are never dropped: stop the servers and remove the data
                        // directory at exit. (PDEATHSIG covers a process killed by a signal.)
                        // SAFETY: registers a plain function with no preconditions.
                        unsafe { libc::atexit(stop_shared) };
                        Ok(cp)
                    }
                    Err(e) => {
                        let message = e.to_string();
                        own_error = Some(e);
                        Err(message)
                    }
                }
            })
            .await;
        if let Some(e) = own_error {
            return Err(e);
        }
        result
            .as_ref()
            .map_err(|message| Error::SharedStartFailed(message.clone()))
    }

    async fn start_once(
        binaries: &binaries::Binaries,
        crds: &[k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition],
    ) -> Result<Self, Error> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{STALE_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|source| Error::DataDir {
                what: "creating",
                path: std::env::temp_dir(),
                source,
            })?;
        let dir = tmp.path().to_path_buf();
        let pki = Pki::generate()?;
        let write = |name: &str, contents: &str| -> Result<PathBuf, Error> {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(|source| Error::DataDir {
                what: "writing",
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        let serving_cert = write("apiserver.crt", &pki.serving_cert_pem)?;
        let serving_key = write("apiserver.key", &pki.serving_key_pem)?;
        let client_ca = write("client-ca.crt", &pki.client_ca_pem)?;
        let sa_key = write("service-account.key", &pki.service_account_key_pem)?;
        let sa_pub = write("service-account.pub", &pki.service_account_pub_pem)?;
        let front_proxy_ca = write("front-proxy-ca.crt", &pki.front_proxy_ca_pem)?;
        let proxy_cert = write("front-proxy-client.crt", &pki.front_proxy_client.cert_pem)?;
        let proxy_key = write("front-proxy-client.key", &pki.front_proxy_client.key_pem)?;
        std::fs::create_dir(dir.join("kubeconfigs")).map_err(|source| Error::DataDir {
            what: "creating",
            path: dir.join("kubeconfigs"),
            source,
        })?;

        let [
            etcd_port,
            peer_port,
            apiserver_port,
            controller_manager_port,
        ] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let d = |p: &Path| p.display().to_string();
        let etcd_args = vec![
            "--name=testbed".to_string(),
            format!("--data-dir={}", d(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testbed={peer_url}"),
            // Test data is thrown away; fsync would only slow every write.
            "--unsafe-no-fsync".to_string(),
            // The bench's 100,000 instances (with their VMs and VMIs and the revisions
            // compaction has not reached yet) pass etcd's default 2 GiB.
            "--quota-backend-bytes=8589934592".to_string(),
        ];
        let etcd = ServerProcess::start("etcd", &binaries.etcd, &etcd_args, dir.join("etcd.log"))?;
        let etcd_command = (binaries.etcd.clone(), etcd_args);
        // Started together: kube-apiserver retries etcd until it answers.
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            // The endpoint reconciler refuses a loopback address for the `kubernetes`
            // Service's endpoints; nothing in the tests uses that Service.
            "--endpoint-reconciler-type=none".to_string(),
            format!("--secure-port={apiserver_port}"),
            // Unused (certificates are given) but keeps defaults out of /var/run.
            format!("--cert-dir={}", d(&dir)),
            format!("--tls-cert-file={}", d(&serving_cert)),
            format!("--tls-private-key-file={}", d(&serving_key)),
            format!("--client-ca-file={}", d(&client_ca)),
            format!("--service-account-key-file={}", d(&sa_pub)),
            format!("--service-account-signing-key-file={}", d(&sa_key)),
            "--service-account-issuer=https://127.0.0.1".to_string(),
            // Required configuration; nothing ever sends traffic to this range.
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            "--authorization-mode=RBAC".to_string(),
            // The controller-manager here runs no service account token controller.
            "--disable-admission-plugins=ServiceAccount".to_string(),
            // The front proxy, for aggregated APIs (the runner's job-logs API): requests
            // reach them with the user in X-Remote-User, over this client certificate.
            format!("--requestheader-client-ca-file={}", d(&front_proxy_ca)),
            format!("--requestheader-allowed-names={}", pki::FRONT_PROXY_CLIENT),
            "--requestheader-username-headers=X-Remote-User".to_string(),
            "--requestheader-group-headers=X-Remote-Group".to_string(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
            format!("--proxy-client-cert-file={}", d(&proxy_cert)),
            format!("--proxy-client-key-file={}", d(&proxy_key)),
        ];
        let apiserver = ServerProcess::start(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &apiserver_args,
            dir.join("kube-apiserver.log"),
        )?;
        let apiserver_command = (binaries.kube_apiserver.clone(), apiserver_args);

        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let admin_kubeconfig = dir.join("kubeconfig");
        let cp = Self {
            server_url,
            pki,
            dir,
            admin_kubeconfig,
            kubeconfig_count: AtomicU64::new(0),
            running: Mutex::new(Some(Running {
                controller_manager: None,
                apiserver,
                etcd,
                _dir: tmp,
            })),
            apiserver_command,
            etcd_command,
        };
        let admin = cp.kubeconfig_document(ADMIN_USER, Some(ADMIN_GROUP), "default")?;
        cp.write_kubeconfig(&cp.admin_kubeconfig, ADMIN_USER, &admin)?;

        let client = cp.client().await?;
        cp.wait_ready(&client).await?;
        crds::install(&client, crds).await?;

        cp.start_controller_manager(
            &binaries.kube_controller_manager,
            controller_manager_port,
            &serving_cert,
            &serving_key,
        )
        .await?;
        Ok(cp)
    }

    /// Starts kube-controller-manager and waits until its controllers run; prints how
    /// long that took (start-up of every test binary pays it).
    async fn start_controller_manager(
        &self,
        binary: &Path,
        port: u16,
        tls_cert: &Path,
        tls_key: &Path,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let setup = controller_manager::Setup {
            kubeconfig: &self.dir.join("kube-controller-manager.kubeconfig"),
            port,
            tls_cert,
            tls_key,
        };
        let (user, group) = (controller_manager::USER, controller_manager::GROUP);
        let document = self.kubeconfig_document(user, Some(group), "default")?;
        self.write_kubeconfig(setup.kubeconfig, user, &document)?;
        let mut process = ServerProcess::start(
            "kube-controller-manager",
            binary,
            &setup.args(),
            self.dir.join("kube-controller-manager.log"),
        )?;
        // The same identity and CA, pointed at the controller-manager's own port.
        let mut config = kubeconfig::to_config(user, document).await?;
        config.cluster_url = format!("https://127.0.0.1:{port}")
            .parse()
            .expect("a valid URL");
        let probe = kube::Client::try_from(config)?;
        controller_manager::wait_ready(&mut process, &probe, READY_TIMEOUT, LOG_LINES).await?;
        eprintln!("kube-controller-manager ready in {:.1?}", started.elapsed());
        self.with_running(|r| r.controller_manager = Some(process))
    }

    /// Kills kube-apiserver (SIGKILL), keeps it down for `down_for`, starts it again on the
    /// same port with the same etcd, and waits until it is ready: what a control-plane
    /// upgrade or crash looks like to clients.
    pub async fn restart_apiserver(&self, down_for: Duration) -> Result<(), Error> {
        self.restart(Server::ApiServer, down_for).await
    }

    /// Kills etcd (SIGKILL), keeps it down for `down_for`, starts it again on the same
    /// ports and data directory, and waits until the API server is ready again: what an
    /// etcd crash or member restart looks like. The API server stays up meanwhile and
    /// answers with errors, as it would in a cluster.
    pub async fn restart_etcd(&self, down_for: Duration) -> Result<(), Error> {
        self.restart(Server::Etcd, down_for).await
    }

    async fn restart(&self, server: Server, down_for: Duration) -> Result<(), Error> {
        self.with_running(|r| server.process(r).kill())?;
        tokio::time::sleep(down_for).await;
        let (name, (binary, args)) = match server {
            Server::ApiServer => ("kube-apiserver", &self.apiserver_command),
            Server::Etcd => ("etcd", &self.etcd_command),
        };
        let log = self.dir.join(format!("{name}-restarted.log"));
        let fresh = ServerProcess::start(name, binary, args, log)?;
        self.with_running(|r| *server.process(r) = fresh)?;
        let client = self.client().await?;
        self.wait_ready(&client).await
    }

    fn with_running<T>(&self, f: impl FnOnce(&mut Running) -> T) -> Result<T, Error> {
        let mut guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_mut().map(f).ok_or(Error::Stopped)
    }

    async fn wait_ready(&self, client: &kube::Client) -> Result<(), Error> {
        let started = Instant::now();
        let mut last_answer = String::from("none yet");
        loop {
            {
                let mut guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
                let running = guard.as_mut().expect("running during start-up");
                let exited = [&mut running.etcd, &mut running.apiserver]
                    .into_iter()
                    .find_map(|server| server.exited().map(|status| (server.name, status)));
                if let Some((name, status)) = exited {
                    return Err(Error::Exited {
                        name,
                        status,
                        logs: running.log_tails(),
                    });
                }
                if started.elapsed() > READY_TIMEOUT {
                    return Err(Error::NotReady {
                        name: "kube-apiserver",
                        endpoint: "/readyz",
                        timeout: READY_TIMEOUT,
                        last_answer,
                        logs: running.log_tails(),
                    });
                }
            }
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a valid request");
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last_answer = body,
                Err(e) => last_answer = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `https://127.0.0.1:PORT`.
    /// The process ids of kube-apiserver and etcd, for the bench's memory figures.
    pub fn server_pids(&self) -> Option<(u32, u32)> {
        let guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|r| (r.apiserver.pid(), r.etcd.pid()))
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The CA certificate (PEM) that signed the API server's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.serving_ca_pem
    }

    /// The administrator's kubeconfig file (namespace `default`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The data directory: logs, certificates, kubeconfigs, etcd's data.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// A client for the administrator (`system:masters`).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client_for(ADMIN_USER, Some(ADMIN_GROUP)).await
    }

    /// A client for `user`, in no group: RBAC allows only what a test grants it.
    pub async fn client_as(&self, user: &str) -> Result<kube::Client, Error> {
        self.client_for(user, None).await
    }

    /// A client for `user` in `group` (for RoleBindings to groups).
    pub async fn client_as_member(&self, user: &str, group: &str) -> Result<kube::Client, Error> {
        self.client_for(user, Some(group)).await
    }

    /// The kube-rs configuration of `user` (in `group`, if any).
    pub async fn config_for(&self, user: &str, group: Option<&str>) -> Result<kube::Config, Error> {
        let document = self.kubeconfig_document(user, group, "default")?;
        kubeconfig::to_config(user, document).await
    }

    async fn client_for(&self, user: &str, group: Option<&str>) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.config_for(user, group).await?)?)
    }

    /// Writes a kubeconfig file for `user` (no group, namespace `default`).
    pub fn kubeconfig_for(&self, user: &str) -> Result<PathBuf, Error> {
        self.kubeconfig_with(user, None, "default")
    }

    /// Writes a kubeconfig file for `user` in `group`, whose context's namespace is
    /// `namespace`. Each call writes a new file, so tests never overwrite each other's.
    pub fn kubeconfig_with(
        &self,
        user: &str,
        group: Option<&str>,
        namespace: &str,
    ) -> Result<PathBuf, Error> {
        let document = self.kubeconfig_document(user, group, namespace)?;
        let n = self.kubeconfig_count.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join("kubeconfigs")
            .join(format!("{n}-{}.yaml", sanitize(user, 40)));
        self.write_kubeconfig(&path, user, &document)?;
        Ok(path)
    }

    fn kubeconfig_document(
        &self,
        user: &str,
        group: Option<&str>,
        namespace: &str,
    ) -> Result<serde_json::Value, Error> {
        let cert = self.pki.client_cert(user, group)?;
        Ok(kubeconfig::document(
            &self.server_url,
            &self.pki.serving_ca_pem,
            user,
            &cert,
            namespace,
        ))
    }

    fn write_kubeconfig(
        &self,
        path: &Path,
        user: &str,
        document: &serde_json::Value,
    ) -> Result<(), Error> {
        let yaml = kubeconfig::to_yaml(user, document)?;
        std::fs::write(path, yaml).map_err(|source| Error::DataDir {
            what: "writing",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Creates a namespace of its own for one test, named `PREFIX-N`.
    ///
    /// Namespaces are left in place: the data directory goes away with the servers.
    /// A test may delete its own; the namespace controller then empties and removes it
    /// (it starts 5 s after the deletion, a fixed delay of Kubernetes).
    pub async fn test_namespace(&self, prefix: &str) -> Result<String, Error> {
        static COUNT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "{}-{}",
            sanitize(prefix, 50),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let namespaces: Api<Namespace> = Api::all(self.client().await?);
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("cloudkit-testbed/test".to_string(), sanitize(prefix, 63))].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(name)
    }

    /// The last lines of the servers' logs (empty once stopped).
    pub fn logs(&self) -> String {
        let guard = self.running.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(Running::log_tails).unwrap_or_default()
    }

    fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(running);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

extern "C" fn stop_shared() {
    if let Some(Ok(cp)) = SHARED.get() {
        cp.stop();
    }
}

/// `N` distinct free ports on 127.0.0.1: all are held at once so none repeats.
fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let listeners = [(); N].map(|_| TcpListener::bind("127.0.0.1:0"));
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(listeners) {
        *port = listener
            .and_then(|l| l.local_addr())
            .map_err(Error::NoFreePort)?
            .port();
    }
    Ok(ports)
}

/// A DNS label made of `text`: lower case, `[a-z0-9-]`, at most `max` characters.
fn sanitize(text: &str, max: usize) -> String {
    let label: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(max)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "test".to_string()
    } else {
        label.to_string()
    }
}

const STALE_PREFIX: &str = "cloudkit-testbed-";

/// Removes data directories left by test processes that were killed (SIGKILL,
/// Ctrl-C): their servers died with them (PDEATHSIG), their directories did not.
fn sweep_stale_dirs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(STALE_PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_makes_dns_labels() {
        assert_eq!(sanitize("Restart_Flow", 63), "restart-flow");
        assert_eq!(sanitize("--", 63), "test");
        assert_eq!(sanitize("abcdef", 3), "abc");
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
    }
}
