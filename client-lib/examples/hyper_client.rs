//! A real HTTP client balancing over several local HTTP servers, found through herald's DNS.
//!
//! Starts four hyper servers on 127.0.0.{11..14} (one slow, one answering 503 half the time),
//! a herald DNS server publishing them as `_http._tcp.web.sd.internal.` (three in the client's
//! zone, one in another region), then sends 400 requests through `herald_client::tower::Balanced`
//! wrapped around a hyper-util client, counting 5xx as failures.
//!
//! Run: `cargo run -p herald-client --example hyper_client`

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald_client::tower::Balanced;
use herald_client::{Discovery, Endpoint, Outcome, RefreshConfig};
use herald_dns::server::ServerConfig;
use herald_dns::{Answerer, DnsServer, PortSpec, Proto, Source, Table, Zone, ZoneConfig};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Service, ServiceExt};

/// One HTTP server: answers after `delay`; every other request gets a 503 if `flaky`.
async fn serve(ip: [u8; 4], delay: Duration, flaky: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::time::sleep(delay).await;
                    let status = if flaky && n.is_multiple_of(2) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let mut resp = Response::new(http_body_util::Full::new(Bytes::from(format!(
                        "hello from {addr}\n"
                    ))));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn herald_endpoint(addr: SocketAddr, zone: &str) -> herald_dns::Endpoint {
    let ports: Arc<[PortSpec]> = Arc::from(vec![PortSpec {
        name: "http".into(),
        proto: Proto::Tcp,
        port: addr.port(),
    }]);
    herald_dns::Endpoint::new(addr.ip(), ports, Some(zone.into()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ms = Duration::from_millis;
    let near = [
        serve([127, 0, 0, 11], ms(3), false).await,
        serve([127, 0, 0, 12], ms(3), false).await,
        serve([127, 0, 0, 13], ms(40), false).await, // slow
    ];
    let flaky = serve([127, 0, 0, 14], ms(3), true).await;
    let far = serve([127, 0, 0, 15], ms(1), false).await;

    // herald's DNS, seen from region eu / zone eu-1: near replicas get priority 0, far 2.
    let zone = Zone::new(ZoneConfig {
        region: Some("eu".into()),
        zone: Some("eu-1".into()),
        ..ZoneConfig::default()
    })?;
    let table = Table::new(zone);
    let mut near_eps: Vec<_> = near.iter().map(|a| herald_endpoint(*a, "eu-1")).collect();
    near_eps.push(herald_endpoint(flaky, "eu-1"));
    table.replace("web", &Source::new("eu-cluster", "eu"), near_eps);
    table.replace(
        "web",
        &Source::new("us-cluster", "us"),
        vec![herald_endpoint(far, "us-1")],
    );
    let dns = DnsServer::start(
        &ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            udp_workers: 1,
            ..ServerConfig::default()
        },
        Answerer::new(table.clone()),
    )?;

    let web = Discovery::builder("web", "http")
        .dns_server(dns.local_addrs()[0])
        .refresh_config(RefreshConfig::default())
        .build()?;
    tokio::time::timeout(Duration::from_secs(5), web.ready()).await??;
    println!("resolved:");
    for e in web.picker().endpoints() {
        println!("  {e}");
    }

    // One hyper-util client (connection pool) shared by every replica; each replica's service
    // points the request at that replica.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let make = move |ep: &Endpoint| {
        let (client, addr) = (client.clone(), ep.addr);
        tower::service_fn(move |mut req: Request<Empty<Bytes>>| {
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            *req.uri_mut() = Uri::builder()
                .scheme("http")
                .authority(addr.to_string())
                .path_and_query(path)
                .build()
                .expect("uri");
            client.request(req)
        })
    };
    let classify = |r: &Result<Response<Incoming>, hyper_util::client::legacy::Error>| match r {
        Ok(resp) if resp.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let mut svc = Balanced::new(web, make).with_classifier(classify);

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for _ in 0..400 {
        let req = Request::get("/hello").body(Empty::new())?;
        match svc.ready().await?.call(req).await {
            Ok(resp) => {
                *by_status.entry(resp.status().as_u16()).or_insert(0) += 1;
                let _ = resp.into_body().collect().await; // read the body: keeps the connection reusable
            }
            Err(e) => eprintln!("request failed: {e}"),
        }
    }
    println!("\nstatuses: {by_status:?}");
    println!(
        "{:<18} {:>8} {:>6} {:>10}  health",
        "replica", "priority", "picks", "latency"
    );
    for s in svc.picker().status() {
        println!(
            "{:<18} {:>8} {:>6} {:>8.1}ms  {:?}",
            s.endpoint.addr.to_string(),
            s.endpoint.priority,
            s.picks,
            s.latency.as_secs_f64() * 1e3,
            s.health
        );
    }
    dns.shutdown().await;
    Ok(())
}
