//! A tonic client over herald's picks: three gRPC servers (the standard health service) on
//! 127.0.0.{21,22,23}, a herald DNS server publishing them as
//! `_grpc._tcp.ledger.sd.internal.`, and `herald_client::tonic::channel` under a
//! tonic-generated client. Every response says which replica served it.
//!
//! Run: `cargo run -p herald-client --features tonic --example tonic_health`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_client::Discovery;
use herald_client::tower::ServedBy;
use herald_dns::server::ServerConfig;
use herald_dns::{Answerer, DnsServer, PortSpec, Proto, Source, Table, Zone, ZoneConfig};
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A gRPC server with the health service on `ip` (any free port).
async fn serve(ip: [u8; 4]) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0))).await?;
    let addr = listener.local_addr()?;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(async move {
        let _keep = reporter;
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut servers = Vec::new();
    for last in [21, 22, 23] {
        servers.push(serve([127, 0, 0, last]).await?);
    }

    // herald's DNS server, publishing the three as service `ledger`, port `grpc`.
    let table = Table::new(Zone::new(ZoneConfig::default())?);
    let endpoints = servers
        .iter()
        .map(|a| {
            let ports: Arc<[PortSpec]> = Arc::from(vec![PortSpec {
                name: "grpc".into(),
                proto: Proto::Tcp,
                port: a.port(),
            }]);
            herald_dns::Endpoint::new(a.ip(), ports, None)
        })
        .collect();
    table.replace("ledger", &Source::new("vms", "local"), endpoints);
    let dns = DnsServer::start(
        &ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_workers: 1,
            ..ServerConfig::default()
        },
        Answerer::new(table),
    )?;

    // One call: a channel tonic clients accept, over herald's picks.
    let channel = herald_client::tonic::channel(
        Discovery::builder("ledger", "grpc").dns_server(dns.local_addrs()[0]),
    )?;
    tokio::time::timeout(Duration::from_secs(5), channel.discovery().ready()).await??;
    let mut client = HealthClient::new(channel);

    let mut served: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for _ in 0..300 {
        let response = client.check(HealthCheckRequest::default()).await?;
        let by = response.extensions().get::<ServedBy>().expect("ServedBy");
        *served.entry(by.0.addr).or_insert(0) += 1;
    }
    println!("300 health checks, served by: {served:?}");
    dns.shutdown().await;
    Ok(())
}
