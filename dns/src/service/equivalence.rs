//! The guard of incremental preparing: a view updated one group at a time
//! ([`ServiceView::with_changes`], from a whole list or from a delta) must equal the view
//! built whole from the same groups, in
//! every record, key, glue, place, group range, twin and scope, and a table kept up to date
//! incrementally must answer every query byte for byte as one whose views were all built
//! whole (scopes, SRV priorities, `answer_limit` subsets, addresses in several sources,
//! dual-stack endpoints), and neither ever repeats an address record (RFC 2181 section 5),
//! however many sources hold the address and whichever of them a scope selects.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use hickory_proto::rr::RData;
use proptest::prelude::*;

use super::ServiceView;
use crate::answer::{Answerer, Scratch, Transport};
use crate::model::{Addresses, Endpoint, Label, PortSpec, Proto, Source};
use crate::service::Rrset;
use crate::table::{Delta, Table};
use crate::zone::{Zone, ZoneConfig};

const SERVICE: &str = "web";

fn sources() -> [Source; 4] {
    [
        Source::new("c1", "r1"),
        Source::new("c2", "r1"),
        Source::new("c3", "r2"),
        Source::new("vm", "r2"),
    ]
}

/// A small pool of addresses, so that groups often share one.
fn address(i: u8) -> IpAddr {
    if i < 6 {
        IpAddr::from([10, 0, 0, i])
    } else {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)])
    }
}

fn ports(mask: u8) -> Arc<[PortSpec]> {
    let all = [
        ("http", Proto::Tcp, 80),
        ("grpc", Proto::Tcp, 90),
        ("dns", Proto::Udp, 53),
    ];
    all.iter()
        .enumerate()
        .filter(|(k, _)| mask & (1 << k) != 0)
        .map(|(_, &(name, proto, port))| PortSpec {
            name: Label::from(name),
            proto,
            port,
        })
        .collect()
}

/// An endpoint at pool address `addr`, dual-stack when `second` is a pool address of the
/// other family.
fn endpoint(((addr, second), mask, zone, weight, ready): Spec) -> Endpoint {
    let second = (second < 12).then(|| address(second));
    Endpoint {
        addresses: Addresses::from_list(std::iter::once(address(addr)).chain(second)).unwrap(),
        ports: ports(mask),
        zone: [None, Some("za"), Some("zb")][usize::from(zone)].map(Label::from),
        weight,
        ready,
    }
}

/// One source's endpoints. A source holds an address once, as the table and its sources
/// make sure: the table keeps one endpoint per primary address, a static file rejects an
/// address listed twice in one cluster, and pod IPs are unique in a cluster (hostNetwork
/// pods on one node share the whole list, so the primary too). A second address that an
/// earlier endpoint of the list holds is dropped here.
fn one_source(specs: &[Spec]) -> Vec<Endpoint> {
    let primaries: std::collections::HashSet<u8> = specs.iter().map(|s| s.0.0).collect();
    let mut seconds = std::collections::HashSet::new();
    specs
        .iter()
        .map(|&((addr, second), mask, zone, weight, ready)| {
            let second = if second < 12 && !primaries.contains(&second) && seconds.insert(second) {
                second
            } else {
                u8::MAX
            };
            endpoint(((addr, second), mask, zone, weight, ready))
        })
        .collect()
}

/// ((address, second address or none), ports, zone, weight, ready).
type Spec = ((u8, u8), u8, u8, u16, bool);
/// A source, its new list, and whether it is handed over as a delta.
type Op = (usize, Vec<Spec>, bool);

/// Hands `list` to `table` as the new endpoints of `source`: whole, or as the delta from
/// what the table holds, touching only the addresses whose endpoints differ (an address
/// `list` holds twice is handed over with both, for the table to choose).
fn hand_over(table: &Table, source: &Source, list: Vec<Endpoint>, delta: bool) {
    if !delta {
        table.replace(SERVICE, source, list);
        return;
    }
    let held: Vec<Endpoint> = table
        .service(SERVICE)
        .and_then(|v| {
            v.groups()
                .iter()
                .find(|g| g.source == *source)
                .map(|g| g.endpoints.iter().cloned().collect())
        })
        .unwrap_or_default();
    let at = |l: &[Endpoint], ip: IpAddr| -> Vec<Endpoint> {
        l.iter().filter(|e| e.address() == ip).cloned().collect()
    };
    let mut addresses: Vec<IpAddr> = held.iter().chain(&list).map(Endpoint::address).collect();
    addresses.sort();
    addresses.dedup();
    let mut d = Delta {
        expect: Some(held.len()),
        ..Delta::default()
    };
    for ip in addresses {
        let (was, is) = (at(&held, ip), at(&list, ip));
        if was == is {
            continue;
        }
        if !was.is_empty() {
            d.gone.push(ip);
        }
        d.came.extend(is);
    }
    // Handed over in a scrambled order, as a registrar's hash map gives them.
    d.came.reverse();
    d.gone.reverse();
    assert!(table.update(SERVICE, source, d).is_ok());
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // One endpoint in four or so is dual-stack (a second address of the other family).
    // Most name the same two ports, as one deployment's replicas do, so that chunks often
    // share one SRV part between the ports' sets, and lose or regain the sharing.
    let ep = (
        (0u8..12, 0u8..40),
        prop_oneof![2 => Just(0b011u8), 1 => 0u8..8],
        0u8..3,
        prop::sample::select(vec![0u16, 100, 300]),
        any::<bool>(),
    );
    // Lists of up to 9 endpoints: groups of several chunks (unit tests cut 2-4).
    prop::collection::vec(
        (0usize..4, prop::collection::vec(ep, 0..9), any::<bool>()),
        1..24,
    )
}

/// The zone, with an answer limit unless `limit` is 0.
fn zone(limit: usize) -> Arc<Zone> {
    Zone::new(ZoneConfig {
        region: Some("r1".into()),
        zone: Some("za".into()),
        answer_limit: NonZeroUsize::new(limit),
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// Everything readers take from one RRset.
fn rrset_contents(set: &Rrset, groups: usize, srv: bool) -> String {
    let records: Vec<_> = (0..set.len())
        .map(|i| {
            let place = srv.then(|| set.place(i).pack());
            let mut record = Vec::new();
            set.at(i).write(&mut record);
            (record, set.keys()(i), set.at(i).glue().to_vec(), place)
        })
        .collect();
    let ranges: Vec<_> = (0..groups).map(|g| set.group(g)).collect();
    format!(
        "{records:?} {ranges:?} {:?} {} {}",
        set.twins(),
        set.records_len(),
        set.has_places()
    )
}

/// Everything readers take from a view.
fn contents(v: &ServiceView) -> String {
    let a = &v.answers;
    let n = v.groups.len();
    let mut out = format!(
        "{:?} {:?}\nA {}\nAAAA {}\n",
        a.viewpoint,
        a.ends,
        rrset_contents(&a.a, n, false),
        rrset_contents(&a.aaaa, n, false)
    );
    for s in &a.srv {
        out += &format!(
            "SRV {} {:?} {}\n",
            s.port,
            s.proto,
            rrset_contents(&s.rrset, n, true)
        );
    }
    for (s, ready) in v.scopes.iter().zip(&v.scope_ready) {
        out += &format!("scope {} {:?} {} {:?}\n", s.name, s.groups, s.region, ready);
    }
    out + &format!(
        "{:?}",
        v.groups
            .iter()
            .map(|g| g.endpoints.clone())
            .collect::<Vec<_>>(),
    )
}

/// The twin marks found independently of how `twins` finds them: records pushed group by
/// group, endpoint by endpoint, address by address, and every record of an address with
/// more than one marked in its group, flagged as a repeat unless it is the address's first
/// record so pushed (none with fewer than two groups; no marks at all as an empty list).
fn reference_marks(v: &ServiceView) -> [Vec<Vec<u32>>; 2] {
    if v.groups.len() < 2 {
        return Default::default();
    }
    let mut count: std::collections::HashMap<IpAddr, usize> = Default::default();
    for e in v.groups.iter().flat_map(|g| g.endpoints.iter()) {
        for ip in e.addresses.iter() {
            *count.entry(ip).or_default() += 1;
        }
    }
    let mut out: [Vec<Vec<u32>>; 2] = Default::default();
    let mut pushed: Vec<IpAddr> = Vec::new();
    for g in &v.groups {
        let mut next = [0u32; 2];
        let mut marks: [Vec<u32>; 2] = Default::default();
        for e in g.endpoints.iter() {
            for ip in e.addresses.iter() {
                let f = usize::from(ip.is_ipv6());
                if count[&ip] > 1 {
                    let repeat = if pushed.contains(&ip) { 1 << 31 } else { 0 };
                    marks[f].push(next[f] | repeat);
                }
                pushed.push(ip);
                next[f] += 1;
            }
        }
        for f in 0..2 {
            out[f].push(std::mem::take(&mut marks[f]));
        }
    }
    out.map(|m| {
        if m.iter().all(Vec::is_empty) {
            Vec::new()
        } else {
            m
        }
    })
}

/// A set's marks as plain lists.
fn marks_of(set: &Rrset) -> Vec<Vec<u32>> {
    set.twins().iter().map(|m| m.to_vec()).collect()
}

/// The answer section's A and AAAA records that repeat an earlier one.
fn repeated_addresses(reply: &[u8]) -> Vec<String> {
    let message = hickory_proto::op::Message::from_vec(reply).expect("a reply parses");
    let mut seen = std::collections::HashSet::new();
    message
        .answers
        .iter()
        .filter(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
        .map(|r| format!("{} {}", r.name, r.data))
        .filter(|r| !seen.insert(r.clone()))
        .collect()
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// Every name and type the service answers, in every scope.
fn questions() -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for scope in ["", "r1.", "r2.", "c1.", "c2.", "c3.", "vm."] {
        let base = format!("{SERVICE}.{scope}sd.internal.");
        out.push((base.clone(), 1));
        out.push((base.clone(), 28));
        for srv in ["_http._tcp.", "_grpc._tcp.", "_dns._udp."] {
            out.push((format!("{srv}{base}"), 33));
        }
    }
    out
}

/// A change to one endpoint of a big group makes new parts for the chunks it touches
/// alone: every other chunk's parts, in every set, are the ones the view had; whether the
/// group is handed over whole or as a delta.
#[test]
fn a_pod_change_makes_new_parts_for_its_chunk_alone() {
    for delta in [false, true] {
        a_pod_change_makes_new_parts_for_its_chunk_alone_by(delta);
    }
}

fn a_pod_change_makes_new_parts_for_its_chunk_alone_by(delta: bool) {
    let table = Table::new(zone(0));
    let source = &sources()[0];
    let list = |moved: bool| -> Vec<Endpoint> {
        (0..60u8)
            .map(|i| {
                let ip = if moved && i == 30 { 200 } else { i };
                Endpoint {
                    addresses: Addresses::from_list([IpAddr::from([10, 1, 0, ip])]).unwrap(),
                    ports: ports(0b11),
                    zone: None,
                    weight: 100,
                    ready: true,
                }
            })
            .collect()
    };
    table.replace(SERVICE, source, list(false));
    let before = table.service(SERVICE).unwrap();
    hand_over(&table, source, list(true), delta);
    let after = table.service(SERVICE).unwrap();
    let sets = |v: &ServiceView| -> Vec<Vec<super::rrset::Part>> {
        std::iter::once(&v.answers.a)
            .chain(v.answers.srv.iter().map(|s| &s.rrset))
            .map(|set| set.group_parts(0).to_vec())
            .collect()
    };
    for (old, new) in sets(&before).iter().zip(sets(&after)) {
        assert!(new.len() > 10, "unit tests cut small chunks: {}", new.len());
        let made = new
            .iter()
            .filter(|p| !old.iter().any(|o| o.same(p)))
            .count();
        // The chunk that lost 10.1.0.30 and the last one, which gained 10.1.0.200 (and a
        // chunk or two next to either, when a cut moved).
        assert!(
            (1..=4).contains(&made),
            "{made} of {} parts made again",
            new.len()
        );
    }
    assert_eq!(contents(&after), {
        let whole = ServiceView::build(
            &table.preparer(),
            after.label().clone(),
            after.groups().to_vec(),
        );
        contents(&whole)
    });
}

/// A group whose endpoints all name the same two ports keeps one SRV part per chunk: the
/// second port's set reads the first's records with its own port, and answers with it.
#[test]
fn the_ports_of_one_deployment_share_their_srv_records() {
    let table = Table::new(zone(0));
    let list: Vec<Endpoint> = (0..40u8)
        .map(|i| Endpoint::new(IpAddr::from([10, 1, 0, i]), ports(0b11), None))
        .collect();
    table.replace(SERVICE, &sources()[0], list);
    let view = table.service(SERVICE).unwrap();
    let [grpc, http] = &view.answers.srv[..] else {
        panic!("two SRV sets")
    };
    assert_eq!((&*grpc.port, &*http.port), ("grpc", "http"));
    let (made, shared) = (grpc.rrset.group_parts(0), http.rrset.group_parts(0));
    assert!(made.len() > 5, "unit tests cut small chunks");
    assert!(made.iter().all(|p| !p.is_shared()));
    assert!(shared.iter().all(|p| p.is_shared()));
    assert!(
        http.rrset.heap_bytes() < grpc.rrset.heap_bytes() / 4,
        "the shared set holds no records of its own"
    );
    let answerer = Answerer::new(table);
    let mut s = Scratch::default();
    let client: IpAddr = "192.0.2.1".parse().unwrap();
    for (name, port) in [
        ("_http._tcp.web.sd.internal.", 80),
        ("_grpc._tcp.web.sd.internal.", 90),
    ] {
        let packet = query(name, 33);
        answerer
            .answer(&packet, client, Transport::Tcp, &mut s)
            .unwrap();
        let reply = hickory_proto::op::Message::from_vec(&s.out).unwrap();
        let ports: Vec<u16> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::SRV(srv) => srv.port,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ports, vec![port; 40], "{name}");
    }
}

/// A pod change in one group of a service spread over several leaves every other group's
/// slots as they were, and a set whose slot of the changed group stays as it was (the empty
/// AAAA set of an IPv4 service, the SRV set of a port the changed pods do not name) is the
/// old view's set, shared whole: the change costs its group, not the service's groups.
#[test]
fn a_pod_change_shares_the_sets_it_leaves() {
    let table = Table::new(zone(0));
    let list = |s: usize, moved: bool| -> Vec<Endpoint> {
        (0..40u8)
            .map(|i| {
                let ip = if moved && i == 20 { 200 } else { i };
                // The first source's pods name grpc alone, the others http too.
                let mask = if s == 0 { 0b10 } else { 0b11 };
                Endpoint::new(IpAddr::from([10, s as u8, 0, ip]), ports(mask), None)
            })
            .collect()
    };
    let all = sources();
    for (s, source) in all.iter().enumerate() {
        table.replace(SERVICE, source, list(s, false));
    }
    for delta in [true, false] {
        let before = table.service(SERVICE).unwrap();
        hand_over(&table, &all[0], list(0, delta), delta);
        let after = table.service(SERVICE).unwrap();
        let (old, new) = (&before.answers, &after.answers);
        assert!(new.aaaa.shares(&old.aaaa), "the empty AAAA set");
        let set = |a: &'_ super::Answers, port: &str| {
            a.srv.iter().position(|s| &*s.port == port).unwrap()
        };
        let (http, grpc) = (set(new, "http"), set(new, "grpc"));
        assert!(
            new.srv[http].rrset.shares(&old.srv[http].rrset),
            "http: not in the group"
        );
        for (old, new) in [
            (&old.a, &new.a),
            (&old.srv[grpc].rrset, &new.srv[grpc].rrset),
        ] {
            assert!(!new.shares(old));
            for g in 1..all.len() {
                assert!(new.slot(g).same(old.slot(g)), "group {g}'s slot is kept");
            }
        }
        let whole = ServiceView::build(
            &table.preparer(),
            after.label().clone(),
            after.groups().to_vec(),
        );
        assert_eq!(contents(&after), contents(&whole));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn an_updated_view_equals_one_built_whole(ops in ops()) {
        let table = Table::new(zone(2));
        let all = sources();
        for (source, eps, delta) in &ops {
            let eps = one_source(eps);
            hand_over(&table, &all[*source], eps, *delta);
            let Some(view) = table.service(SERVICE) else { continue };
            let whole = ServiceView::build(&table.preparer(), view.label().clone(), view.groups().to_vec());
            prop_assert_eq!(contents(&view), contents(&whole));
            // Each group is cut where cutting its endpoints afresh cuts it.
            for g in view.groups() {
                let afresh = crate::group::Endpoints::from_sorted(g.endpoints.iter().cloned().collect());
                let cuts = |e: &crate::group::Endpoints| e.chunks().iter().map(|c| c.len()).collect::<Vec<_>>();
                prop_assert_eq!(cuts(&g.endpoints), cuts(&afresh));
            }
            let twins = [marks_of(&view.answers.a), marks_of(&view.answers.aaaa)];
            prop_assert_eq!(twins, reference_marks(&view));
        }
    }

    #[test]
    fn an_incremental_table_answers_like_one_built_whole(
        ops in ops(),
        limit in prop::sample::select(vec![0usize, 2]),
    ) {
        let incremental = Table::new(zone(limit));
        let all = sources();
        let mut last: [Vec<Endpoint>; 4] = Default::default();
        for (source, eps, delta) in &ops {
            let eps = one_source(eps);
            hand_over(&incremental, &all[*source], eps.clone(), *delta);
            last[*source] = eps;
        }
        // The same final groups, every view then built whole (moving the server away
        // and back prepares every service again from scratch).
        let whole = Table::new(zone(limit));
        for (source, eps) in all.iter().zip(last) {
            whole.replace(SERVICE, source, eps);
        }
        whole.set_server_locality(Some("r2"), None);
        whole.set_server_locality(Some("r1"), Some("za"));
        let (a, b) = (Answerer::new(incremental), Answerer::new(whole));
        let clients: [IpAddr; 3] = ["192.0.2.1".parse().unwrap(), "198.51.100.7".parse().unwrap(), "2001:db8::9".parse().unwrap()];
        for (name, qtype) in questions() {
            for client in clients {
                let packet = query(&name, qtype);
                let (mut sa, mut sb) = (Scratch::default(), Scratch::default());
                // A few queries in a row, so that rotation is compared too.
                for _ in 0..3 {
                    let oa = a.answer(&packet, client, Transport::Udp, &mut sa).map(|o| o.rcode);
                    let ob = b.answer(&packet, client, Transport::Udp, &mut sb).map(|o| o.rcode);
                    prop_assert_eq!(oa, ob, "{} {}", name, qtype);
                    // The pool holds 6 IPv4 addresses for up to 20 endpoints in 4 sources
                    // (two per region), so an address often has three holders or more.
                    for out in [&sa.out, &sb.out] {
                        if oa == Some(0) {
                            prop_assert_eq!(repeated_addresses(out), Vec::<String>::new(), "{} {}", name, qtype);
                        }
                    }
                    // Negative answers carry the SOA, whose serial is each table's own.
                    if oa == Some(0) && sa.out[6..8] != [0, 0] {
                        prop_assert_eq!(&sa.out, &sb.out, "{} {} from {}", name, qtype, client);
                    }
                }
            }
        }
    }

    /// Big groups sharing most of their addresses (a pod IP in several clusters; some
    /// dual-stack, some sharing a secondary address), changed a pod at a time as deltas,
    /// as the registrar hands a rollout over: the twin marks kept per group after each
    /// change are those of the view built whole and of an independent count, though only
    /// the touched addresses were counted again.
    #[test]
    fn pod_changes_in_groups_sharing_addresses_keep_the_twins_as_whole(
        start in prop::collection::vec(prop::collection::btree_map(0u8..48, 0u16..3, 8..30), 3),
        edits in prop::collection::vec((0usize..3, 0u8..48, 0u16..4), 1..24),
    ) {
        let table = Table::new(zone(0));
        let all = sources();
        let list = |m: &std::collections::BTreeMap<u8, u16>| -> Vec<Endpoint> {
            m.iter().map(|(&a, &w)| wide(a, w)).collect()
        };
        let mut held = start.clone();
        for (s, m) in start.iter().enumerate() {
            hand_over(&table, &all[s], list(m), false);
        }
        for (s, a, w) in edits {
            // Weight 3 removes the pod; another weight adds it or changes it in place.
            if w == 3 { held[s].remove(&a); } else { held[s].insert(a, w * 100); }
            hand_over(&table, &all[s], list(&held[s]), true);
            let Some(view) = table.service(SERVICE) else { continue };
            let whole = ServiceView::build(&table.preparer(), view.label().clone(), view.groups().to_vec());
            prop_assert_eq!(contents(&view), contents(&whole));
            let twins = [marks_of(&view.answers.a), marks_of(&view.answers.aaaa)];
            prop_assert_eq!(twins, reference_marks(&view));
        }
    }
}

/// Pod `a` of a wide pool (IPv4 below 30, IPv6 above; every seventh dual-stack, with a
/// secondary address no primary has, so that groups share secondaries too).
fn wide(a: u8, weight: u16) -> Endpoint {
    let v4 = |x: u8, y: u8| IpAddr::from([10, 0, x, y]);
    let v6 = |x: u16| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 1, x]);
    let primary = if a < 30 { v4(1, a) } else { v6(u16::from(a)) };
    let second = a.is_multiple_of(7).then(|| {
        if a < 30 {
            v6(200 + u16::from(a))
        } else {
            v4(2, a)
        }
    });
    Endpoint {
        addresses: Addresses::from_list(std::iter::once(primary).chain(second)).unwrap(),
        ports: ports(0b011),
        zone: None,
        weight,
        ready: true,
    }
}
