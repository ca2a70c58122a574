//! IPv4 prefixes as GCE writes them (`10.128.0.0/20`; a bare address means `/32`), with the
//! containment and overlap tests alias-range validation needs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    pub fn first(&self) -> u32 {
        u32::from(self.addr) & Self::mask(self.len)
    }

    pub fn last(&self) -> u32 {
        self.first() | !Self::mask(self.len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= self.first() && ip <= self.last()
    }

    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.first() >= self.first() && other.last() <= self.last()
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    pub fn host(ip: Ipv4Addr) -> Self {
        Ipv4Net { addr: ip, len: 32 }
    }

    /// Dotted netmask, for the metadata server's `subnetmask`.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(Self::mask(self.len))
    }

    /// First usable address (GCE's gateway is the second address of the primary range).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first().wrapping_add(1))
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    /// Strict: the host bits must be zero (`10.0.0.5/24` is rejected).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                l.parse::<u8>()
                    .map_err(|_| format!("bad prefix length in {s:?}"))?,
            ),
            None => (s, 32),
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("bad IPv4 address in {s:?}"))?;
        if l > 32 {
            return Err(format!("bad prefix length in {s:?}"));
        }
        let n = Ipv4Net { addr, len: l };
        if u32::from(addr) != n.first() {
            return Err(format!("{s:?} has host bits set"));
        }
        Ok(n)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_relations() {
        let a: Ipv4Net = "10.128.0.0/20".parse().unwrap();
        let b: Ipv4Net = "10.128.0.100".parse().unwrap();
        assert_eq!(b.to_string(), "10.128.0.100/32");
        assert!(a.contains_net(&b) && a.overlaps(&b) && !b.contains_net(&a));
        assert!("10.128.0.5/24".parse::<Ipv4Net>().is_err());
        assert_eq!(a.netmask().to_string(), "255.255.240.0");
        assert_eq!(a.gateway().to_string(), "10.128.0.1");
        let c: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }
}
