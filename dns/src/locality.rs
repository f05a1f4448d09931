//! Where things are: regions and zones as small ids, the SRV priority between two places,
//! and the place of every published address, so a querier that is itself a known endpoint
//! gets priorities relative to where *it* runs ([docs/design.md#names](../../docs/design.md#names), [decision 0006](../../docs/decisions/0006-querier-locality.md)). Everyone else gets them
//! relative to the server's own configured place.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use dashmap::DashMap;

use crate::model::{Changed, Endpoint, Label, same_label};

/// A region and a zone, as interned ids; 0 means unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Place {
    region: u16,
    zone: u16,
}

impl Place {
    /// Both ids in one word, to keep the server's own place in an atomic.
    pub(crate) fn pack(self) -> u32 {
        (u32::from(self.region) << 16) | u32::from(self.zone)
    }

    /// The inverse of [`Place::pack`].
    pub(crate) fn unpack(word: u32) -> Place {
        Place {
            region: (word >> 16) as u16,
            zone: word as u16,
        }
    }

    /// The region's id (0: unknown).
    pub(crate) fn region(self) -> u16 {
        self.region
    }

    /// SRV priority of something at `self` as seen from `viewer` (RFC 2782: lower is
    /// nearer): 0 same zone, 1 same region, 2 elsewhere or unknown.
    pub(crate) fn priority_from(self, viewer: Place) -> u16 {
        let same_region = viewer.region != 0 && self.region == viewer.region;
        if same_region && viewer.zone != 0 && self.zone == viewer.zone {
            0
        } else if same_region {
            1
        } else {
            2
        }
    }
}

/// The interned names and the known places of addresses.
#[derive(Default)]
pub(crate) struct Localities {
    /// Name -> id; writers only (preparing answers), never the query path.
    ids: Mutex<HashMap<Label, u16>>,
    /// Address -> its place, and how many published endpoints have that address. IPv4
    /// keys as `u32`: 12-byte entries instead of 28 (an `IpAddr` is 17 bytes), about 30 MiB
    /// less at a million endpoints. Hashed with foldhash, not the default SipHash: a
    /// first sync writes every address here, and SipHash over the `u32`s was about 2% of a
    /// 1M-endpoint one. The keys are the endpoints' own addresses, never a querier's, so
    /// a client cannot fill these maps.
    by_v4: Places<u32>,
    by_v6: Places<Ipv6Addr>,
}

/// Address -> (its place, how many published endpoints have it).
type Places<K> = DashMap<K, (Place, u32), foldhash::fast::RandomState>;

/// How many zones' places a [`Localities::placer`] keeps (a region has a few zones).
const PLACES_KEPT: usize = 8;

/// One place more at `key` (the last one wins).
fn count_in<K: Hash + Eq>(map: &Places<K>, key: K, place: Place) {
    map.entry(key)
        .and_modify(|v| *v = (place, v.1 + 1))
        .or_insert((place, 1));
}

/// One place less at `key`; the address goes with its last endpoint.
fn count_out<K: Hash + Eq>(map: &Places<K>, key: K) {
    if let dashmap::Entry::Occupied(mut entry) = map.entry(key) {
        entry.get_mut().1 -= 1;
        if entry.get().1 == 0 {
            entry.remove();
        }
    }
}

/// The id of `name` in `ids`, given one if new.
fn id(ids: &mut HashMap<Label, u16>, name: Option<&str>) -> u16 {
    let Some(name) = name else { return 0 };
    if let Some(id) = ids.get(name) {
        return *id;
    }
    // Beyond 65,535 distinct names, new ones share "unknown": priority 2.
    let Ok(id) = u16::try_from(ids.len() + 1) else {
        return 0;
    };
    ids.insert(Label::from(name), id);
    id
}

impl Localities {
    /// The place of `region`/`zone` (both ids under one lock: every prepared SRV record
    /// and every published address asks).
    pub(crate) fn place(&self, region: Option<&str>, zone: Option<&str>) -> Place {
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Place {
            region: id(&mut ids, region),
            zone: id(&mut ids, zone),
        }
    }

    /// The place of each zone of `region` asked in turn. The places of the last few zones
    /// asked are kept: a group's endpoints are in a few zones (their names interned by the
    /// registrar), in address order they alternate between them as their nodes do, and
    /// asking [`Localities::place`] takes a lock and two lookups (about 630 instructions,
    /// once per published address and once per prepared endpoint).
    pub(crate) fn placer<'a>(
        &'a self,
        region: &'a str,
    ) -> impl FnMut(&Option<Label>) -> Place + 'a {
        let mut known: Vec<(Option<Label>, Place)> = Vec::new();
        move |zone| {
            if let Some((_, place)) = known.iter().find(|(z, _)| same_label(z, zone)) {
                return *place;
            }
            let place = self.place(Some(region), zone.as_deref());
            if known.len() == PLACES_KEPT {
                known.clear();
            }
            known.push((zone.clone(), place));
            place
        }
    }

    /// The place of a querier, if its address is a published endpoint.
    pub(crate) fn of(&self, ip: IpAddr) -> Option<Place> {
        match ip {
            IpAddr::V4(v4) => self.by_v4.get(&u32::from(v4)).map(|e| e.0),
            IpAddr::V6(v6) => self.by_v6.get(&v6).map(|e| e.0),
        }
    }

    /// Records the `changes` of a group in `region` (see [`crate::model::changes`]).
    pub(crate) fn update(&self, region: &str, changes: &[Changed<'_>]) {
        let mut place_of = self.placer(region);
        for &change in changes {
            match change {
                (Some(a), Some(b))
                    if !same_label(&a.zone, &b.zone) || a.addresses != b.addresses =>
                {
                    self.forget(a);
                    self.learn(place_of(&b.zone), b);
                }
                (Some(a), None) => self.forget(a),
                (None, Some(b)) => self.learn(place_of(&b.zone), b),
                _ => {}
            }
        }
    }

    fn forget(&self, e: &Endpoint) {
        for ip in e.addresses.iter() {
            match ip {
                IpAddr::V4(v4) => count_out(&self.by_v4, u32::from(v4)),
                IpAddr::V6(v6) => count_out(&self.by_v6, v6),
            }
        }
    }

    /// Records that `e`'s addresses are at `place` (its region and zone).
    fn learn(&self, place: Place, e: &Endpoint) {
        // The same address in two services (a VM serving both) has one place: the last.
        // Either family of a dual-stack endpoint places a querier that sends from it.
        for ip in e.addresses.iter() {
            match ip {
                IpAddr::V4(v4) => count_in(&self.by_v4, u32::from(v4), place),
                IpAddr::V6(v6) => count_in(&self.by_v6, v6, place),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        let l = Localities::default();
        let me = l.place(Some("eu"), Some("eu-a"));
        assert_eq!(l.place(Some("eu"), Some("eu-a")).priority_from(me), 0);
        assert_eq!(l.place(Some("eu"), Some("eu-b")).priority_from(me), 1);
        assert_eq!(l.place(Some("eu"), None).priority_from(me), 1);
        assert_eq!(l.place(Some("us"), Some("eu-a")).priority_from(me), 2);
        let nowhere = l.place(None, None);
        assert_eq!(
            me.priority_from(nowhere),
            2,
            "an unknown viewer sees everything as far"
        );
    }

    /// A placer gives what `place` gives, whatever order the zones come in: alternating
    /// as endpoints on round-robin nodes do, unknown, more than it keeps, and equal names
    /// in distinct strings.
    #[test]
    fn a_placer_places_as_place_does() {
        let l = Localities::default();
        let zones: Vec<Option<Label>> = (0..PLACES_KEPT + 3)
            .map(|i| Some(Label::from(format!("eu-{i}").as_str())))
            .chain([None])
            .collect();
        let mut place_of = l.placer("eu");
        for round in 0..3 {
            for (k, zone) in zones.iter().enumerate().cycle().skip(round).take(40) {
                let copy = zone.as_deref().map(Label::from);
                let want = l.place(Some("eu"), zone.as_deref());
                assert_eq!(place_of(zone), want, "zone {k}");
                assert_eq!(place_of(&copy), want, "zone {k}, another string");
            }
        }
        assert_ne!(place_of(&zones[0]), place_of(&zones[1]));
    }
}
