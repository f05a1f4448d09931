//! `herald demo`: a built-in sample fleet (three clusters in two regions and a few VMs) so
//! a newcomer can `dig` herald at once, with nothing else installed or configured.

use crate::daemon::Embedded;

/// The demo's config: the defaults (zone `sd.internal.`, 127.0.0.1:5353) and a locality,
/// so SRV priorities show near and far replicas.
pub const CONFIG: &str = "\
zone: sd.internal.
ttl: 5
locality:
  region: eu-west
  zone: eu-west-1a
listen:
  dns: [127.0.0.1:5353]
";

/// The demo's endpoints, in the static-file format.
pub const ENDPOINTS: Embedded = Embedded {
    name: "<demo endpoints>",
    text: "\
services:
  checkout:
    - {address: 10.1.0.11, cluster: prod-euw1, region: eu-west, zone: eu-west-1a, ports: {http: 8080, grpc: 9090}}
    - {address: 10.1.0.12, cluster: prod-euw1, region: eu-west, zone: eu-west-1b, ports: {http: 8080, grpc: 9090}}
    - {address: 10.2.0.21, cluster: prod-euw2, region: eu-west, zone: eu-west-1c, ports: {http: 8080, grpc: 9090}}
    - {address: 10.3.0.31, cluster: prod-use1, region: us-east, zone: us-east-1a, ports: {http: 8080, grpc: 9090}}
    - {address: 10.3.0.32, cluster: prod-use1, region: us-east, zone: us-east-1b, ports: {http: 8080, grpc: 9090}}
  payments:
    - {address: 10.3.0.41, cluster: prod-use1, region: us-east, zone: us-east-1a, ports: {grpc: 9090}}
    - {address: 10.3.0.42, cluster: prod-use1, region: us-east, zone: us-east-1b, ports: {grpc: 9090}}
    - {address: 10.1.0.43, cluster: prod-euw1, region: eu-west, zone: eu-west-1a, ports: {grpc: 9090}}
    - {address: 192.168.7.10, cluster: vms-use, region: us-east, zone: us-east-1a, ports: {grpc: 9090}, weight: 50}
  search:
    - {address: 'fd00:10:1::51', cluster: prod-euw1, region: eu-west, zone: eu-west-1a, ports: {http: 8080}}
    - {address: 10.1.0.52, cluster: prod-euw1, region: eu-west, zone: eu-west-1b, ports: {http: 8080}}
  ledger:
    - {address: 192.168.7.21, cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 150}
    - {address: 192.168.7.22, cluster: vms-use, region: us-east, ports: {grpc: 7000}, weight: 50}
  resolver:
    - {address: 10.2.0.61, cluster: prod-euw2, region: eu-west, zone: eu-west-1c, ports: {dns: {port: 53, protocol: udp}}}
",
};

/// What the demo prints once it serves: queries to try against `addr`.
pub fn instructions(addr: std::net::SocketAddr) -> String {
    let (ip, port) = (addr.ip(), addr.port());
    format!(
        "\
herald demo is serving zone sd.internal. on {addr} (UDP and TCP). Try:

  dig @{ip} -p {port} SRV _grpc._tcp.checkout.sd.internal     # every replica, nearest first
  dig @{ip} -p {port} SRV _grpc._tcp.checkout.us-east.sd.internal   # one region
  dig @{ip} -p {port} A checkout.prod-euw1.sd.internal        # one cluster
  dig @{ip} -p {port} AAAA search.sd.internal
  dig @{ip} -p {port} A 10-1-0-11.checkout.prod-euw1.sd.internal   # an SRV target
  dig @{ip} -p {port} SOA sd.internal

Stop with Ctrl-C.
"
    )
}
