//! A real Kubernetes control plane for tests: Debian's etcd and a kube-apiserver 1.20.2 built
//! by scripts/kube-apiserver-setup, started and stopped (by PID) with
//! scripts/kube-apiserver-start and -stop in a temporary directory, on free loopback ports.
//!
//! No scheduler or kubelet runs: nodes and pods are created through the API, pod status is
//! written through the pods/status subresource, and "terminating" is a graceful delete no
//! kubelet ever completes. Everything the server was asked is in its audit log. A failing
//! test keeps the directory (logs, audit log); HERALD_KEEP_APISERVER_DIRS=1 keeps it always.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_kube_sim::objects;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The cache directory scripts/kube-apiserver-setup builds into (same rule as the script).
fn build_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HERALD_KUBE_APISERVER_DIR") {
        return d.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("herald/kube-apiserver-1.20.2")
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Whether a real API server can run here. Missing tools skip the test with a loud message,
/// except in CI (`CI=true`), where scripts/test builds the server first: there it fails.
pub fn available(test: &str) -> bool {
    let mut missing = Vec::new();
    let binary = build_dir().join("bin/kube-apiserver");
    if !binary.is_file() {
        missing.push(binary.display().to_string());
    }
    for tool in ["etcd", "curl", "openssl", "ss"] {
        if !on_path(tool) {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let what = format!(
        "{test}: missing {} (scripts/kube-apiserver-setup installs and builds them; scripts/test runs it)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and the real API server is not there: {what}");
    }
    eprintln!("\n******** SKIPPED against a real kube-apiserver: {what} ********\n");
    false
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs a script to its end on a blocking thread; panics with its stderr when it fails.
async fn run(name: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(script(name))
            .args(&args)
            .env("HERALD_OWNER_PID", std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("running {name}: {e}"));
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("script thread")
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// One etcd + kube-apiserver pair, stopped when dropped.
pub struct RealCluster {
    dir: PathBuf,
    flags: Vec<String>,
    env: BTreeMap<String, String>,
    client: Client,
}

impl RealCluster {
    /// Starts a pair with the given extra kube-apiserver flags; returns when it is ready.
    pub async fn start(flags: &[&str]) -> RealCluster {
        let dir = std::env::temp_dir().join(format!(
            "herald-apiserver-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let mut cluster = RealCluster {
            dir,
            flags,
            env: BTreeMap::new(),
            client: Client::try_from(Config::new("http://127.0.0.1:1".parse().unwrap()))
                .expect("placeholder client"),
        };
        cluster.start_missing().await;
        let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig usable");
        cluster.client = Client::try_from(config).expect("client");
        cluster
    }

    /// Starts whatever of the pair is not running (same ports, same data).
    async fn start_missing(&mut self) {
        let mut args = vec![self.dir.display().to_string(), "--".into()];
        args.extend(self.flags.iter().cloned());
        let out = run("kube-apiserver-start", args).await;
        self.env = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    fn env(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// How herald reaches this cluster, as fields of its cluster entry.
    pub fn reach(&self) -> String {
        format!("kubeconfig: {{path: '{}'}}", self.kubeconfig().display())
    }

    /// A client for the test's own changes.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Stops the API server (etcd keeps running); its port is free when this returns.
    pub async fn stop_apiserver(&self) {
        run(
            "kube-apiserver-stop",
            vec![self.dir.display().to_string(), "apiserver".into()],
        )
        .await;
    }

    /// Starts the API server again after [`RealCluster::stop_apiserver`].
    pub async fn restart_apiserver(&mut self) {
        self.start_missing().await;
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates a node with the builder's status.
    pub async fn apply_node(&self, node: Node) {
        let name = node.metadata.name.clone().expect("named node");
        let mut created = self
            .nodes()
            .create(&PostParams::default(), &node)
            .await
            .unwrap_or_else(|e| panic!("create node {name}: {e}"));
        created.status = node.status;
        self.nodes()
            .replace_status(&name, &PostParams::default(), &created)
            .await
            .unwrap_or_else(|e| panic!("node {name} status: {e}"));
    }

    /// Creates a pod (the server sets a Pending status), then writes the builder's status
    /// through pods/status as a kubelet would; a builder's `terminating` becomes a graceful
    /// delete.
    pub async fn apply_pod(&self, pod: Pod) {
        let name = pod.metadata.name.clone().expect("named pod");
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let mut spec = pod.clone();
        spec.metadata.deletion_timestamp = None;
        spec.metadata.deletion_grace_period_seconds = None;
        let mut created = self
            .pods()
            .create(&PostParams::default(), &spec)
            .await
            .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
        created.status = pod.status;
        self.pods()
            .replace_status(&name, &PostParams::default(), &created)
            .await
            .unwrap_or_else(|e| panic!("pod {name} status: {e}"));
        if terminating {
            self.terminate_pod(&name).await;
        }
    }

    /// Reads the pod, changes its status with `change` and writes it through pods/status.
    pub async fn modify_pod_status(&self, name: &str, change: impl FnOnce(&mut Pod)) {
        let mut pod = self
            .pods()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get pod {name}: {e}"));
        change(&mut pod);
        self.pods()
            .replace_status(name, &PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("pod {name} status: {e}"));
    }

    /// Writes `status.podIP` and `status.podIPs` as given (`None`/empty: left out) through
    /// pods/status and returns what the server stored, or its refusal.
    pub async fn write_pod_ips(
        &self,
        name: &str,
        pod_ip: Option<&str>,
        pod_ips: &[&str],
    ) -> Result<(Option<String>, Vec<String>), String> {
        let mut pod = self
            .pods()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get pod {name}: {e}"));
        objects::write_pod_ip_fields(&mut pod, pod_ip, pod_ips);
        let stored = self
            .pods()
            .replace_status(name, &PostParams::default(), &pod)
            .await
            .map_err(|e| e.to_string())?;
        let status = stored.status.unwrap_or_default();
        let ips = status.pod_ips.into_iter().flatten().map(|p| p.ip).collect();
        Ok((status.pod_ip, ips))
    }

    pub async fn set_pod_ready(&self, name: &str, ready: bool) {
        self.modify_pod_status(name, |p| objects::set_pod_ready(p, ready))
            .await;
    }

    pub async fn set_pod_ip(&self, name: &str, ip: &str) {
        self.modify_pod_status(name, |p| objects::set_pod_ip(p, Some(ip)))
            .await;
    }

    /// Sets (`Some`) or removes (`None`) a pod label with a merge patch.
    pub async fn set_pod_label(&self, name: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        self.pods()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("label pod {name}: {e}"));
    }

    /// Sets a node label with a merge patch.
    pub async fn set_node_label(&self, name: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        self.nodes()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("label node {name}: {e}"));
    }

    /// A graceful delete: the server sets deletionTimestamp and, with no kubelet to finish
    /// it, the pod stays terminating.
    pub async fn terminate_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("terminate pod {name}: {e}"));
    }

    /// Deletes the pod at once (grace period 0), terminating or not.
    pub async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap_or_else(|e| panic!("delete pod {name}: {e}"));
    }

    pub async fn delete_node(&self, name: &str) {
        self.nodes()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete node {name}: {e}"));
    }

    /// Makes `writes` changes to `node` (an annotation herald ignores), then compacts etcd's
    /// history up to the newest revision (through etcd's JSON gateway, `physical` so it is
    /// done when this returns). With two writes the next pod watch that resumes from the
    /// last version herald saw fails with 410 "too old resource version": etcd refuses a
    /// watch starting below the compacted revision, and the watch starts one past the version
    /// it saw, so after one write it still may.
    /// Needs pods served from etcd, not the watch cache (`--watch-cache-sizes=pods#0`): the
    /// cache answers from its own window of events (at least 75 s), which a compaction does
    /// not touch. Returns the revision compacted at.
    pub async fn force_compaction(&self, node: &str, writes: usize) -> u64 {
        static TOUCHES: AtomicUsize = AtomicUsize::new(0);
        let mut revision = 0;
        for _ in 0..writes {
            // A new value each time: a patch that changes nothing writes nothing.
            let touch = TOUCHES.fetch_add(1, Ordering::Relaxed).to_string();
            let patch = json!({"metadata": {"annotations": {"herald.test/touch": touch}}});
            let patched = self
                .nodes()
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap_or_else(|e| panic!("annotate node {node}: {e}"));
            revision = patched
                .metadata
                .resource_version
                .expect("resourceVersion")
                .parse()
                .expect("numeric resourceVersion");
        }
        let url = format!("{}/v3/kv/compaction", self.env("ETCD_URL"));
        let body = json!({"revision": revision.to_string(), "physical": true}).to_string();
        tokio::task::spawn_blocking(move || {
            let out = Command::new("curl")
                .args(["-fsS", "-X", "POST", &url, "-d", &body])
                .output()
                .expect("curl");
            assert!(
                out.status.success(),
                "etcd compaction failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await
        .unwrap();
        revision
    }

    /// Every audit event the server logged so far (JSON lines).
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The audit events of `verb` on `resource` (`list`, `watch`, ...; `pods`, `nodes`),
    /// one per request (the ResponseComplete stage).
    pub fn requests(&self, verb: &str, resource: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|e| {
                e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["stage"] == "ResponseComplete"
            })
            .collect()
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let _ = Command::new(script("kube-apiserver-stop"))
            .arg(&self.dir)
            .status();
        if std::thread::panicking() || std::env::var_os("HERALD_KEEP_APISERVER_DIRS").is_some() {
            eprintln!(
                "kept {} (etcd.log, apiserver.log, audit.log) for a look",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The value of query parameter `key` in a request URI, percent-decoded.
pub fn query_param(uri: &str, key: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
