//! A NIC's alias list as GCE keeps it (`aliasIpRanges`, gce-api.md §2.4) and the one rule
//! for changing it: a PATCH replaces the whole list, so every write is "the list as read,
//! minus the addresses asked to leave, plus the addresses asked to come", every other entry
//! sent back exactly as read (its `subnetworkRangeName` included, entries we do not
//! understand too). Pure functions, so the merge can be proven with property tests.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Is this `ipCidrRange` the single address `ip`? GCE answers `10.0.0.5/32` and sometimes
/// a bare `10.0.0.5` (openshift cloud-network-config-controller, gcp.go). A wider range, a
/// prefix that is not a plain number (`/abc`, `/+32`) or an address that does not parse is
/// not the VIP: reading a malformed answer as "held here" would report a VIP the cloud does
/// not route.
pub fn is_host(range: &str, ip: IpAddr) -> bool {
    let host = if ip.is_ipv4() { 32 } else { 128 };
    let (addr, len) = match range.split_once('/') {
        Some((a, l)) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) || l.len() > 3 {
                return false;
            }
            match l.parse::<u8>() {
                Ok(l) => (a, l),
                Err(_) => return false,
            }
        }
        None => (range, host),
    };
    len == host && addr.parse::<IpAddr>().is_ok_and(|a| a == ip)
}

/// The `ipCidrRange` of an entry, when it has one.
pub fn range_of(entry: &Value) -> Option<&str> {
    entry.get("ipCidrRange")?.as_str()
}

/// Does the list hold `ip` as a single-address alias?
pub fn holds(list: &[Value], ip: IpAddr) -> bool {
    list.iter()
        .any(|e| range_of(e).is_some_and(|r| is_host(r, ip)))
}

/// The entry that makes `ip` an alias: `/32` (or `/128`), in the named secondary range
/// when there is one (otherwise the subnet's primary range).
pub fn entry_for(ip: IpAddr, range_name: Option<&str>) -> Value {
    let host = if ip.is_ipv4() { 32 } else { 128 };
    let mut e = json!({ "ipCidrRange": format!("{ip}/{host}") });
    if let Some(r) = range_name {
        e["subnetworkRangeName"] = json!(r);
    }
    e
}

/// What one action wants of one NIC's list: `ip` present (as `entry`) or absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Want {
    pub ip: IpAddr,
    /// `Some(entry)`: present; `None`: absent.
    pub entry: Option<Value>,
}

impl Want {
    pub fn present(ip: IpAddr, range_name: Option<&str>) -> Want {
        Want {
            ip,
            entry: Some(entry_for(ip, range_name)),
        }
    }
    pub fn absent(ip: IpAddr) -> Want {
        Want { ip, entry: None }
    }
    pub fn met_by(&self, list: &[Value]) -> bool {
        holds(list, self.ip) == self.entry.is_some()
    }
}

/// The list that satisfies every want (at most one want per address: the caller decides
/// between two that disagree). Entries keep their order; new ones go at the end.
pub fn merged(current: &[Value], wants: &[Want]) -> Vec<Value> {
    let leaving: Vec<IpAddr> = wants
        .iter()
        .filter(|w| w.entry.is_none())
        .map(|w| w.ip)
        .collect();
    let mut out: Vec<Value> = current
        .iter()
        .filter(|e| !range_of(e).is_some_and(|r| leaving.iter().any(|ip| is_host(r, *ip))))
        .cloned()
        .collect();
    for w in wants {
        if let Some(e) = &w.entry {
            if !holds(&out, w.ip) {
                out.push(e.clone());
            }
        }
    }
    out
}

/// Does the list already satisfy every want?
pub fn satisfied(list: &[Value], wants: &[Want]) -> bool {
    wants.iter().all(|w| w.met_by(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_address_forms_only() {
        let v = ip("10.128.0.100");
        assert!(is_host("10.128.0.100/32", v));
        assert!(is_host("10.128.0.100", v));
        for not in [
            "10.128.0.100/abc",
            "10.128.0.100/",
            "10.128.0.100/+32",
            "10.128.0.100/032x",
            "10.128.0.100/24",
            "10.128.0.0/24",
            "10.128.0.10/32",
            "10.128.0.100/32/32",
            " 10.128.0.100/32",
            "",
        ] {
            assert!(!is_host(not, v), "{not:?}");
        }
        assert!(is_host("fd00::5/128", ip("fd00::5")));
        assert!(!is_host("fd00::5/32", ip("fd00::5")));
    }

    #[test]
    fn merge_keeps_others_exactly() {
        let cur = vec![
            json!({"ipCidrRange": "10.200.0.8/29", "subnetworkRangeName": "vips"}),
            json!({"ipCidrRange": "10.128.0.100/32"}),
            json!({"odd": true}),
        ];
        let out = merged(
            &cur,
            &[
                Want::absent(ip("10.128.0.100")),
                Want::present(ip("10.128.0.7"), None),
            ],
        );
        assert_eq!(
            out,
            vec![
                cur[0].clone(),
                cur[2].clone(),
                json!({"ipCidrRange": "10.128.0.7/32"})
            ]
        );
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        (0u8..6).prop_map(|d| IpAddr::from([10, 128, 0, 100 + d]))
    }

    fn arb_entry() -> impl Strategy<Value = Value> {
        prop_oneof![
            arb_ip().prop_map(|a| json!({"ipCidrRange": format!("{a}/32")})),
            arb_ip().prop_map(|a| json!({"ipCidrRange": a.to_string()})),
            arb_ip().prop_map(
                |a| json!({"ipCidrRange": format!("{a}/32"), "subnetworkRangeName": "vips"})
            ),
            (0u8..4).prop_map(|n| json!({"ipCidrRange": format!("10.200.{n}.0/24")})),
            "[0-9a-z./]{0,12}".prop_map(|s| json!({"ipCidrRange": s})),
            Just(json!({"no": "range"})),
            Just(json!(42)),
        ]
    }

    fn arb_wants() -> impl Strategy<Value = Vec<Want>> {
        // at most one want per address, as the writer guarantees
        proptest::collection::btree_map(arb_ip(), any::<Option<bool>>(), 0..6).prop_map(|m| {
            m.into_iter()
                .map(|(a, w)| match w {
                    Some(true) => Want::present(a, Some("vips")),
                    Some(false) => Want::present(a, None),
                    None => Want::absent(a),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_drops_what_it_was_not_asked_to_remove(
            cur in proptest::collection::vec(arb_entry(), 0..8),
            wants in arb_wants(),
        ) {
            let out = merged(&cur, &wants);
            for e in &cur {
                let asked = range_of(e).is_some_and(|r| {
                    wants.iter().any(|w| w.entry.is_none() && is_host(r, w.ip))
                });
                if !asked {
                    prop_assert!(out.contains(e), "{e} dropped");
                }
            }
        }

        #[test]
        fn idempotent_and_satisfying(
            cur in proptest::collection::vec(arb_entry(), 0..8),
            wants in arb_wants(),
        ) {
            let once = merged(&cur, &wants);
            prop_assert_eq!(&merged(&once, &wants), &once);
            prop_assert!(satisfied(&once, &wants));
            // a satisfied list is left as it is: no needless write
            if satisfied(&cur, &wants) {
                prop_assert_eq!(&once, &cur);
            }
        }
    }
}
