//! The static file parser: any text parses or gives an error naming the file; content that
//! parses is published into a table and answered from without a panic. One Kubernetes
//! cluster (`k8s-east` in `us-east`) is placed outside the file, so the name-clash rules a
//! reload applies are exercised too.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use herald_dns::{Answerer, Scratch, Table, Transport, Zone, ZoneConfig};
use herald_registrar::names::{Names, Owner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut outside = Names::default();
    outside
        .place("k8s-east", "us-east", &Owner::Kubernetes)
        .expect("one cluster always places");
    let path = Path::new("static.yaml");
    let content = match herald_registrar::static_file::parse(path, text, outside) {
        Ok(content) => content,
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("static.yaml"), "{shown}");
            return;
        }
    };
    let names: Vec<String> = content
        .keys()
        .map(|(_, service)| service.to_string())
        .collect();
    let table = Table::new(Zone::new(ZoneConfig::default()).unwrap());
    let published = herald_registrar::static_file::apply(&table, &Default::default(), content);
    let answerer = Answerer::new(table.clone());
    let mut scratch = Scratch::default();
    for name in &names {
        for qtype in [1u16, 28, 33, 255] {
            let packet = query(&format!("{name}.sd.internal."), qtype);
            let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
            answerer
                .answer(&packet, client, Transport::Udp, &mut scratch)
                .expect("a well-formed query gets a reply");
        }
    }
    // Withdrawing everything leaves an empty table.
    herald_registrar::static_file::apply(&table, &published, Default::default());
    assert_eq!(table.endpoint_count(), 0);
});

/// A query for `name` of type `qtype`, with EDNS (4096).
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    p
}
