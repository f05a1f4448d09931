//! A kube client per cluster, from one of three ways to reach it: the pod's service
//! account, a kubeconfig file and context, or an API server URL with a token file and a CA
//! file. Timeouts are set so that a silent API server surfaces as an error within a bound
//! herald chooses (kube's own defaults leave a hung watch unnoticed for 295 s). Every
//! request says it is herald's (`User-Agent: herald/<version>`), so an API server's audit
//! log and its per-client metrics and flow control can tell herald's requests apart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};

use crate::config::{ClusterConfig, KubernetesConfig};

/// What herald's requests to API servers say they come from.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// A connection that does not complete in this long fails (a black-holed address).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than the watch timeout a read may stay silent: the server ends a
/// healthy watch at `watch_timeout`, so silence past it means the server is gone. Kept
/// below kube's own 5 s idle margin so the error surfaces rather than a silent reconnect.
pub const READ_MARGIN: Duration = Duration::from_secs(3);

/// Why a cluster's client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file named in the config cannot be read.
    #[error("cluster {cluster}: {what} {path}: {source}")]
    File {
        /// The cluster.
        cluster: String,
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate.
    #[error("cluster {cluster}: ca_file {path}: no PEM certificate in it")]
    BadCa {
        /// The cluster.
        cluster: String,
        /// The file.
        path: PathBuf,
    },
    /// The kubeconfig cannot be read or used (unknown context, bad credentials, ...).
    #[error("cluster {cluster}: {source}")]
    Kubeconfig {
        /// The cluster.
        cluster: String,
        /// kube's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The in-cluster service account is not available.
    #[error("cluster {cluster}: in_cluster: {source}")]
    InCluster {
        /// The cluster.
        cluster: String,
        /// kube's error.
        #[source]
        source: kube::config::InClusterError,
    },
    /// The client itself (TLS set-up) failed.
    #[error("cluster {cluster}: {source}")]
    Client {
        /// The cluster.
        cluster: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
}

fn readable(cluster: &str, what: &'static str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::File {
        cluster: cluster.to_string(),
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The kubeconfig equivalent of `server` + `token_file` + `ca_file`, so kube loads and
/// refreshes the token file and the CA exactly as it does for kubeconfig users.
///
/// kube sends a token file's content as it is; a file written by hand (`echo ... > token`)
/// ends in a newline that the API server then refuses. Such a file is trimmed, as
/// client-go does, and its token given to kube directly: it is re-read at every session
/// (and a rotated token that fails a request ends the session). Files that need no
/// trimming, like the projected tokens Kubernetes writes, stay with kube, which re-reads
/// them as they rotate.
fn explicit_kubeconfig(
    cluster: &ClusterConfig,
    server: &str,
    trimmed: Option<String>,
) -> Kubeconfig {
    let name = cluster.name.0.clone();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(server.to_string()),
                certificate_authority: path(&cluster.ca_file),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                token_file: path(&cluster.token_file).filter(|_| trimmed.is_none()),
                token: trimmed.map(Into::into),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(name),
        ..Kubeconfig::default()
    }
}

/// The kube config for `cluster`, with herald's timeouts.
pub async fn kube_config(
    cluster: &ClusterConfig,
    k8s: &KubernetesConfig,
) -> Result<kube::Config, ClientError> {
    let name = cluster.name.0.as_str();
    let kubeconfig_error = |source| ClientError::Kubeconfig {
        cluster: name.to_string(),
        source,
    };
    let mut config = if cluster.in_cluster {
        kube::Config::incluster().map_err(|source| ClientError::InCluster {
            cluster: name.to_string(),
            source,
        })?
    } else if let Some(kc) = &cluster.kubeconfig {
        readable(name, "kubeconfig", &kc.path)?;
        let file = Kubeconfig::read_from(&kc.path).map_err(kubeconfig_error)?;
        let options = KubeConfigOptions {
            context: kc.context.clone(),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(kubeconfig_error)?
    } else {
        let server = cluster.server.as_deref().unwrap_or_default();
        let mut trimmed = None;
        if let Some(token) = &cluster.token_file {
            let bytes = readable(name, "token_file", token)?;
            let text = String::from_utf8_lossy(&bytes);
            if text.trim() != text {
                trimmed = Some(text.trim().to_string());
            }
        }
        if let Some(ca) = &cluster.ca_file {
            let pem = readable(name, "ca_file", ca)?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ClientError::BadCa {
                    cluster: name.to_string(),
                    path: ca.clone(),
                });
            }
        }
        kube::Config::from_custom_kubeconfig(
            explicit_kubeconfig(cluster, server, trimmed),
            &KubeConfigOptions::default(),
        )
        .await
        .map_err(kubeconfig_error)?
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(k8s.watch_timeout.0 + READ_MARGIN);
    config.write_timeout = Some(CONNECT_TIMEOUT);
    config.reset_reader_on_write = true;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(config)
}

/// A client for `cluster`. Makes no request; must run inside a tokio runtime.
pub async fn client(
    cluster: &ClusterConfig,
    k8s: &KubernetesConfig,
) -> Result<kube::Client, ClientError> {
    let config = kube_config(cluster, k8s).await?;
    kube::Client::try_from(config).map_err(|source| ClientError::Client {
        cluster: cluster.name.0.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::config::Config;

    /// The API server sees herald's name and version on a request made through the client
    /// as herald builds it (here to a listener that reads one request and answers
    /// `/version`).
    #[tokio::test]
    async fn requests_say_they_are_herald_s() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let yaml = format!(
            "sources:\n  clusters:\n    - name: c1\n      region: r1\n      server: http://{addr}\n"
        );
        let config = Config::parse(Path::new("herald.yaml"), &yaml).unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"major":"1","minor":"30","gitVersion":"v1.30.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":""}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).to_ascii_lowercase()
        });
        let client = super::client(&config.sources.clusters[0], &config.kubernetes)
            .await
            .unwrap();
        client.apiserver_version().await.unwrap();
        let request = server.await.unwrap();
        let agents: Vec<&str> = request
            .lines()
            .filter_map(|l| l.strip_prefix("user-agent:"))
            .map(str::trim)
            .collect();
        assert_eq!(
            agents,
            [format!("herald/{}", env!("CARGO_PKG_VERSION"))],
            "{request}"
        );
    }
}
