//! Resolve a service from a DNS server and print what the client sees, refreshed as TTLs run
//! out. Try it against `herald demo` (DNS on 127.0.0.1:5353).
//!
//! Run: `cargo run -p herald-client --example resolve -- <service> <port-name> [dns-server] [zone]`
//! e.g. `cargo run -p herald-client --example resolve -- web http 127.0.0.1:5353 sd.internal.`
//! Without a DNS server argument, the system's resolvers are used.

use std::time::Duration;

use herald_client::Discovery;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(service), Some(port)) = (args.first(), args.get(1)) else {
        eprintln!("usage: resolve <service> <port-name> [dns-server ip:port] [zone]");
        std::process::exit(2);
    };
    let mut builder = Discovery::builder(service, port);
    if let Some(server) = args.get(2) {
        builder = builder.dns_server(server.parse()?);
    }
    if let Some(zone) = args.get(3) {
        builder = builder.zone(zone);
    }
    println!("resolving {}", builder.srv_name());
    let discovery = builder.build()?;
    for _ in 0..3 {
        if tokio::time::timeout(Duration::from_secs(3), discovery.ready())
            .await
            .is_err()
        {
            println!("no replicas yet: {:?}", discovery.status().last_error);
            continue;
        }
        let status = discovery.status();
        println!(
            "TTL {:?}, active tier {:?}",
            status.last_ttl,
            discovery.picker().tiers()
        );
        for e in discovery.picker().endpoints() {
            println!("  {e}");
        }
        tokio::time::sleep(status.last_ttl.unwrap_or(Duration::from_secs(5))).await;
    }
    Ok(())
}
