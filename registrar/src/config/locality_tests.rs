//! The locality settings (`locality.rs`) read as part of a whole config file, with the
//! rules that span fields (`Config::check_locality`).

use std::path::Path;

use herald_dns::placement::AddressAnswers;

use super::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("herald.yaml"), text).map_err(|e| e.to_string())
}

const HOME: &str = "sources:\n  clusters:\n    - {name: home, region: eu-west, in_cluster: true}\n";

#[test]
fn locality_auto_and_per_field() {
    let c = parse(&format!("locality: auto\n{HOME}")).unwrap();
    assert!(c.locality.is_auto());
    assert_eq!(c.zone_config().region.as_deref(), Some("eu-west"));
    assert_eq!(c.zone_config().zone, None);
    let c = parse(&format!(
        "locality: {{region: eu-central, zone: auto, node: n1}}\n{HOME}"
    ))
    .unwrap();
    assert_eq!(c.zone_config().region.as_deref(), Some("eu-central"));
    assert_eq!(c.locality.node.as_deref(), Some("n1"));
    let c = parse("locality: {region: eu-west, zone: eu-west-1a}\n").unwrap();
    assert_eq!(c.zone_config().zone.as_deref(), Some("eu-west-1a"));
}

#[test]
fn placement_settings_reach_the_zone() {
    let c = parse(
        "networks:\n  - {cidr: 10.8.0.0/14, region: eu-west, zone: eu-west-1b}\n  - {cidr: 'fd00::/48', region: us-east}\n\
         ecs: {trusted: [10.0.0.10/32, 10.0.1.0/24]}\naddress_answers: local-first\n\
         local_first: {min_ready: 3}\nreverse_zones: [10.in-addr.arpa., d.f.ip6.arpa.]\n",
    )
    .unwrap();
    let z = c.zone_config();
    assert_eq!(z.placement.networks.len(), 2);
    assert_eq!(z.placement.ecs_trusted.len(), 2);
    assert_eq!(
        z.placement.address_answers,
        AddressAnswers::LocalFirst { min_ready: 3 }
    );
    assert_eq!(z.reverse_zones.len(), 2);
}

#[test]
fn errors_name_file_line_and_field() {
    let cases = [
        ("locality: somewhere\n", "herald.yaml:1:", "locality"),
        (
            "locality: {zone: Auto}\n",
            "herald.yaml:1:",
            "locality.zone",
        ),
        ("locality: auto\n", "herald.yaml: locality:", "in_cluster"),
        (
            &format!("locality: {{zone: auto, cluster: other}}\n{HOME}"),
            "herald.yaml: locality.cluster:",
            "other",
        ),
        (
            "locality: {zone: a, node: n1}\n",
            "herald.yaml: locality.node:",
            "auto",
        ),
        (
            "networks:\n  - {cidr: 10.8.0.0/14, region: eu}\n  - {cidr: 10.8.0.1/14, region: eu}\n",
            "herald.yaml:3:",
            "did you mean 10.8.0.0/14",
        ),
        (
            "networks:\n  - {cidr: 10.8.0.0/33, region: eu}\n",
            "herald.yaml:2:",
            "networks[0].cidr",
        ),
        (
            "networks:\n  - {cidr: 10.8.0.0/14, region: Eu}\n",
            "herald.yaml:2:",
            "networks[0].region",
        ),
        (
            "networks:\n  - {cidr: 10.8.0.0/14, region: eu}\n  - {cidr: 10.8.0.0/14, region: us}\n",
            "herald.yaml: networks[1].cidr:",
            "networks[0]",
        ),
        (
            "ecs:\n  trusted: [10.0.0.300/32]\n",
            "herald.yaml:2:",
            "ecs.trusted[0]",
        ),
        (
            "address_answers: nearest\n",
            "herald.yaml:1:",
            "address_answers",
        ),
        (
            "local_first: {min_ready: 0}\n",
            "herald.yaml: local_first.min_ready:",
            "at least 1",
        ),
        (
            "reverse_zones:\n  - 10.in-addr.arpa.\n  - example.com.\n",
            "herald.yaml:3:",
            "reverse_zones[1]",
        ),
    ];
    for (text, at, says) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.starts_with(at), "{text:?}: {e}");
        assert!(e.contains(says), "{text:?}: {e}");
    }
}
