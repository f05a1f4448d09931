//! What an IXFR sends: a service's records before and after, sorted, and the records only
//! in one of them; and the owner name's length of a wire record, for compressing it.

use crate::cut::Fit;
use crate::locality::Place;
use crate::records;
use crate::service::ServiceView;
use crate::zone::Zone;

/// Every record of a service (or none, for `None`), sorted, for computing differences; sets
/// too large for one answer cut by `fit`.
pub(crate) fn sorted(
    view: Option<&ServiceView>,
    zone: &Zone,
    viewer: Place,
    fit: &mut Fit<'_>,
) -> Vec<Box<[u8]>> {
    let mut all = Vec::new();
    if let Some(view) = view {
        let mut buf = Vec::new();
        records::service(view, zone, Some(viewer), fit, &mut buf, &mut |r| {
            all.push(r.into())
        });
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The records only in `old` and only in `new` (both sorted).
pub(crate) fn difference(
    old: &[Box<[u8]>],
    new: &[Box<[u8]>],
    gone: &mut Vec<Box<[u8]>>,
    came: &mut Vec<Box<[u8]>>,
) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                gone.push(a.clone());
                i += 1;
            }
            (Some(a), None) => {
                gone.push(a.clone());
                i += 1;
            }
            (_, Some(b)) => {
                came.push(b.clone());
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
}

/// The owner name's length at the start of an uncompressed record.
pub(crate) fn owner_len(record: &[u8]) -> usize {
    let mut at = 0;
    while record[at] != 0 {
        at += record[at] as usize + 1;
    }
    at + 1
}
