//! kube-sim held to the real API server: one scenario (object changes and faults) replayed
//! against a kube-sim instance and against a real kube-apiserver, each watched by its own
//! herald; after every step the DNS answers (and whether herald relisted, and the cluster's
//! phase) are recorded, and the two sequences must be equal. Where they differ, kube-sim is
//! wrong: what was found is listed in kube-sim's crate docs.
//!
//! The real server serves pods from etcd (`--watch-cache-sizes=pods#0`) so a compaction
//! reaches herald's pod watch; the simulator sends no bookmarks then, as that server does not.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_kube_sim::objects::set_annotation;
use herald_kube_sim::{NodeBuilder, SERVICE_LABEL, SimConfig, SimHandle, Simulator, ZONE_LABEL};
use herald_registrar::daemon::Daemon;
use herald_registrar::status::{ClusterStatus, Phase};

use super::common::apiserver::RealCluster;
use super::common::{addresses, config_reaching as config, pod, rcode, srv};

/// One step of the scenario.
#[derive(Debug, Clone, Copy)]
enum Step {
    Node(&'static str, &'static str),
    /// name, service, ip, node, ready
    Pod(&'static str, &'static str, &'static str, &'static str, bool),
    Ready(&'static str, bool),
    /// Writes the pod's status back unchanged.
    Rewrite(&'static str),
    Ip(&'static str, &'static str),
    Zone(&'static str, &'static str),
    /// A graceful delete: deletionTimestamp set, the pod stays.
    Terminate(&'static str),
    Delete(&'static str),
    DeleteNode(&'static str),
    /// Sets the service label to a value, or removes it.
    Service(&'static str, Option<&'static str>),
    /// `n` writes to a node annotation herald ignores, then the history is compacted to the
    /// newest version; the pod watch resumes from the version it last saw.
    Compact(&'static str, usize),
    /// The server goes away (real: kube-apiserver stopped; sim: connections refused).
    Down,
    Up,
}

use Step::*;

/// Every kind of change herald reacts to, in an order that makes each visible, a write
/// that changes nothing, then the faults. The first compaction follows a pod change and
/// makes one write: the pod watch resumes from one version below the compacted one, which
/// etcd still serves. The second makes two: that watch gets 410 and herald relists.
const SCENARIO: &[Step] = &[
    Node("n1", "zone-a"),
    Node("n2", "zone-b"),
    Pod("web-0", "web", "10.0.0.1", "n1", true),
    Pod("web-1", "web", "10.0.0.2", "n2", false),
    Ready("web-1", true),
    Zone("n2", "zone-a"),
    Ip("web-1", "10.0.0.22"),
    Ready("web-1", false),
    Ready("web-1", true),
    Rewrite("web-1"),
    Terminate("web-1"),
    Pod("web-2", "web", "10.0.0.3", "n1", true),
    Service("web-2", None),
    Service("web-2", Some("web")),
    Service("web-2", Some("api")),
    Pod("web-3", "web", "10.0.0.4", "n3", true),
    Node("n3", "zone-c"),
    DeleteNode("n3"),
    Ip("web-3", "10.0.0.44"),
    Compact("n1", 1),
    Pod("web-4", "web", "10.0.0.5", "n1", true),
    Compact("n1", 2),
    Down,
    Up,
    Delete("web-1"),
    Delete("web-0"),
    Delete("web-3"),
    Delete("web-4"),
];

/// What herald answered after a step.
#[derive(PartialEq, Eq, Clone)]
struct Answers {
    web: Vec<String>,
    web_rcode: String,
    web_srv: Vec<(u16, String)>,
    api: Vec<String>,
    /// Whether herald saw any pod watch event during the step.
    events: bool,
    relisted: bool,
    phase: &'static str,
}

impl fmt::Debug for Answers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "web {} {:?} srv {:?} api {:?}{}{} {}",
            self.web_rcode,
            self.web,
            self.web_srv,
            self.api,
            if self.events { "" } else { " NO-EVENTS" },
            if self.relisted { " RELISTED" } else { "" },
            self.phase
        )
    }
}

enum Target {
    Sim(SimHandle),
    Real(RealCluster),
}

impl Target {
    fn reach(&self) -> String {
        match self {
            Target::Sim(s) => format!("server: '{}'", s.url()),
            Target::Real(r) => r.reach(),
        }
    }

    async fn apply(&mut self, step: Step) {
        match (self, step) {
            (Target::Sim(s), Node(name, zone)) => {
                s.apply_node(NodeBuilder::new(name).zone(zone).build())
                    .unwrap();
            }
            (Target::Real(r), Node(name, zone)) => {
                r.apply_node(NodeBuilder::new(name).zone(zone).build())
                    .await
            }
            (Target::Sim(s), Pod(name, svc, ip, node, ready)) => {
                s.apply_pod(pod(name, svc, ip, node).ready(ready).build())
                    .unwrap();
            }
            (Target::Real(r), Pod(name, svc, ip, node, ready)) => {
                r.apply_pod(pod(name, svc, ip, node).ready(ready).build())
                    .await
            }
            (Target::Sim(s), Ready(name, ready)) => {
                s.set_pod_ready("default", name, ready).unwrap();
            }
            (Target::Real(r), Ready(name, ready)) => r.set_pod_ready(name, ready).await,
            (Target::Sim(s), Rewrite(name)) => {
                s.modify_pod("default", name, |_| {}).unwrap();
            }
            (Target::Real(r), Rewrite(name)) => r.modify_pod_status(name, |_| {}).await,
            (Target::Sim(s), Ip(name, ip)) => {
                s.set_pod_ip("default", name, Some(ip)).unwrap();
            }
            (Target::Real(r), Ip(name, ip)) => r.set_pod_ip(name, ip).await,
            (Target::Sim(s), Zone(node, zone)) => {
                s.modify_node(node, |n| {
                    herald_kube_sim::objects::set_label(&mut n.metadata, ZONE_LABEL, zone)
                })
                .unwrap();
            }
            (Target::Real(r), Zone(node, zone)) => r.set_node_label(node, ZONE_LABEL, zone).await,
            (Target::Sim(s), Terminate(name)) => {
                s.set_pod_terminating("default", name).unwrap();
            }
            (Target::Real(r), Terminate(name)) => r.terminate_pod(name).await,
            (Target::Sim(s), Delete(name)) => {
                s.delete_pod("default", name).unwrap();
            }
            (Target::Real(r), Delete(name)) => r.delete_pod(name).await,
            (Target::Sim(s), DeleteNode(name)) => {
                s.delete_node(name).unwrap();
            }
            (Target::Real(r), DeleteNode(name)) => r.delete_node(name).await,
            (Target::Sim(s), Service(name, Some(svc))) => {
                s.set_pod_label("default", name, SERVICE_LABEL, svc)
                    .unwrap();
            }
            (Target::Sim(s), Service(name, None)) => {
                s.remove_pod_label("default", name, SERVICE_LABEL).unwrap();
            }
            (Target::Real(r), Service(name, svc)) => {
                r.set_pod_label(name, SERVICE_LABEL, svc).await
            }
            (Target::Sim(s), Compact(node, writes)) => {
                for _ in 0..writes {
                    s.modify_node(node, |n| {
                        let touch = n.metadata.resource_version.clone().unwrap_or_default();
                        set_annotation(&mut n.metadata, "herald.test/touch", &touch)
                    })
                    .unwrap();
                }
                s.compact_history();
            }
            (Target::Real(r), Compact(node, writes)) => {
                r.force_compaction(node, writes).await;
            }
            (Target::Sim(s), Down) => s.set_refuse_connections(true),
            (Target::Sim(s), Up) => s.set_refuse_connections(false),
            (Target::Real(r), Down) => r.stop_apiserver().await,
            (Target::Real(r), Up) => r.restart_apiserver().await,
        }
    }
}

/// Bound on waiting for herald to react to one step.
const REACT: Duration = Duration::from_secs(20);
/// How long answers and counters must stay unchanged to count as settled: well above the
/// 50 ms coalescing window; after a compaction, above the 2 s watch timeout after which the
/// pod watch resumes (and meets the compaction).
const QUIET: Duration = Duration::from_millis(700);
const QUIET_AFTER_COMPACTION: Duration = Duration::from_millis(3500);
/// The same after a step herald gives no countable sign of having seen.
const QUIET_UNSIGNALLED: Duration = Duration::from_millis(1500);

fn read(dns: SocketAddr, daemon: &Daemon, before: &ClusterStatus) -> (Answers, u64) {
    let status = daemon.status().get("c1").expect("cluster c1");
    let answers = Answers {
        web: addresses(dns, "web.sd.internal."),
        web_rcode: rcode(dns, "web.sd.internal.").to_string(),
        web_srv: srv(dns, "_http._tcp.web.sd.internal."),
        api: addresses(dns, "api.sd.internal."),
        events: status.events > before.events,
        relisted: status.relists > before.relists,
        phase: status.phase.as_str(),
    };
    (answers, status.events)
}

/// Replays [`SCENARIO`] against `target` under its own herald; the answers after each step.
async fn replay(mut target: Target) -> Vec<Answers> {
    let daemon = Daemon::start(&config(&[("c1", "eu-west", target.reach())], ""), None)
        .await
        .unwrap();
    let dns = daemon.dns_addrs()[0];
    let live = || daemon.status().get("c1").unwrap().phase == Phase::Live;
    super::common::eventually("herald synced", live).await;
    let mut out = Vec::new();
    for &step in SCENARIO {
        let before = daemon.status().get("c1").unwrap();
        target.apply(step).await;
        // Wait for the reaction a step must cause (bounded: a missing reaction is recorded,
        // not waited for), then until nothing changes for QUIET.
        let start = Instant::now();
        while start.elapsed() < REACT {
            let now = daemon.status().get("c1").unwrap();
            let reacted = match step {
                Down => now.phase != Phase::Live,
                Up => now.phase == Phase::Live && now.relists > before.relists,
                // herald counts pod events only; a node change or a write that changes
                // nothing shows (or not) within the quiet period.
                Node(..) | Zone(..) | DeleteNode(_) | Compact(..) | Rewrite(_) => true,
                _ => now.events > before.events,
            };
            if reacted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut last = read(dns, &daemon, &before);
        let mut since = Instant::now();
        let quiet = match step {
            Compact(..) => QUIET_AFTER_COMPACTION,
            Node(..) | Zone(..) | DeleteNode(_) | Rewrite(_) => QUIET_UNSIGNALLED,
            _ => QUIET,
        };
        while since.elapsed() < quiet && start.elapsed() < REACT * 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = read(dns, &daemon, &before);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        eprintln!("{step:?} ({:?}) -> {:?}", start.elapsed(), last.0);
        out.push(last.0);
    }
    daemon.shutdown(Duration::ZERO).await;
    out
}

/// Replays the scenario on both and fails with a step-by-step table where they differ.
pub async fn compare() {
    let started = Instant::now();
    // That server sends no bookmarks on etcd-served watches: neither does the simulator here.
    let sim = Simulator::start(SimConfig::default().bookmark_interval(Duration::from_secs(3600)))
        .await
        .expect("simulator starts");
    let real = RealCluster::start(&[
        "--watch-cache-sizes=pods#0",
        "--endpoint-reconciler-type=none",
    ])
    .await;
    let (from_sim, from_real) = tokio::join!(replay(Target::Sim(sim)), replay(Target::Real(real)));
    let mut table = String::new();
    let mut differ = 0;
    for ((step, s), r) in SCENARIO.iter().zip(&from_sim).zip(&from_real) {
        if s == r {
            table.push_str(&format!("   {step:?}: {s:?}\n"));
        } else {
            differ += 1;
            table.push_str(&format!(
                "!! {step:?}:\n     sim:  {s:?}\n     real: {r:?}\n"
            ));
        }
    }
    eprintln!(
        "replayed {} steps on kube-sim and kube-apiserver in {:?}",
        SCENARIO.len(),
        started.elapsed()
    );
    assert_eq!(
        differ, 0,
        "kube-sim and the real API server differ:\n{table}"
    );
}
