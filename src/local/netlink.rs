//! The only file that speaks rtnetlink (the `netlink-packet-*` crates change their API
//! often, so they stay behind this wall). A small synchronous client: dump links,
//! addresses and routes; add and delete one address or one `local` route. Every receive is
//! bounded by the action's deadline: `SO_RCVTIMEO` is set from what is left before each
//! request, not once at open (a request after a 15 s cloud claim gets 3 s, not 18).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
    AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::deadline::Deadline;

/// cloudvip's routing protocol number for `local_mode=route`, and the IFA_PROTO of its
/// addresses. The GCE guest agent owns 66 and deletes proto-66 routes it does not know;
/// 167 is unassigned in /etc/iproute2/rt_protos, so neither tool ever removes the other's
/// routes.
pub const RTPROT_CLOUDVIP: u8 = 167;
const RT_TABLE_LOCAL: u8 = 255;

#[derive(Clone, Debug)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up and with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
}

#[derive(Clone, Debug)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    /// IFA_PROTO (Linux 5.18+): who added it; `RTPROT_CLOUDVIP` for our VIPs.
    pub protocol: Option<u8>,
    /// IFA_LABEL (IPv4), e.g. `eth0:vip`.
    pub label: Option<String>,
    /// Scope universe (not link-local or host): an address the node is reached by.
    pub global: bool,
}

#[derive(Clone, Debug)]
pub struct LocalRoute {
    pub index: u32,
    pub ip: IpAddr,
    pub protocol: u8,
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    deadline: Deadline,
}

/// The least a kernel request gets even at the very end of the budget: the kernel answers
/// in microseconds, and stop must still be able to remove the address then (this comes
/// out of the margin `Deadline` keeps for exiting).
const MIN_KERNEL_WAIT: Duration = Duration::from_millis(100);

impl Rtnl {
    pub fn open(deadline: &Deadline) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Extended acks give better kernel error messages; harmless when unsupported.
        let _ = sock.set_ext_ack(true);
        Ok(Rtnl {
            sock,
            seq: 0,
            deadline: deadline.clone(),
        })
    }

    /// One request; replies are collected until the ACK (or error) or the end of a dump.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut pkt = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        pkt.finalize();
        let mut buf = vec![0u8; pkt.buffer_len()];
        pkt.serialize(&mut buf);
        self.sock.send(&buf, 0)?;

        let mut out = Vec::new();
        loop {
            set_rcvtimeo(&self.sock, self.deadline.remaining().max(MIN_KERNEL_WAIT))?;
            let (data, _) = self.sock.recv_from_full().map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "netlink: no answer from the kernel before the deadline",
                    )
                } else {
                    e
                }
            })?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..]).map_err(
                    |e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink decode: {e}")),
                )?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => match e.code {
                            None => return Ok(out),
                            Some(_) => return Err(e.to_io()),
                        },
                        NetlinkPayload::InnerMessage(i) => out.push(i),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                _ => None,
            })
            .collect())
    }

    pub fn addresses(&mut self) -> io::Result<Vec<Addr>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            let (mut ip, mut protocol, mut label) = (None, None, None);
            for attr in &a.attributes {
                match attr {
                    // IFA_LOCAL is the address itself on IPv4 point-to-point links;
                    // IPv6 has only IFA_ADDRESS.
                    AddressAttribute::Local(l) => ip = Some(*l),
                    AddressAttribute::Address(l) if ip.is_none() => ip = Some(*l),
                    AddressAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
                    AddressAttribute::Label(l) => label = Some(l.clone()),
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                out.push(Addr {
                    index: a.header.index,
                    ip,
                    prefix: a.header.prefix_len,
                    protocol,
                    label,
                    global: a.header.scope == AddressScope::Universe,
                });
            }
        }
        Ok(out)
    }

    /// Add an address; `Ok(false)` when it was already there (EEXIST), so start stays
    /// idempotent. IPv6 addresses skip duplicate address detection: a tentative address
    /// cannot be used or announced, and the cloud (or Pacemaker) already guarantees
    /// that one node holds the VIP. The address carries IFA_PROTO `RTPROT_CLOUDVIP`, as
    /// our local routes do, so that stop can tell it from the node's own (kernels before
    /// 5.18 ignore the attribute; `local/` keeps a record as well).
    pub fn add_address(
        &mut self,
        index: u32,
        ip: IpAddr,
        prefix: u8,
        label: Option<&str>,
    ) -> io::Result<bool> {
        let mut m = addr_msg(index, ip, prefix);
        m.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                RTPROT_CLOUDVIP,
            )));
        match ip {
            IpAddr::V4(v4) => {
                if prefix < 31 {
                    let bcast = u32::from(v4) | (u32::MAX >> prefix);
                    m.attributes
                        .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
                }
                if let Some(l) = label {
                    m.attributes.push(AddressAttribute::Label(l.to_owned()));
                }
            }
            IpAddr::V6(_) => {
                m.header.flags = AddressHeaderFlags::Nodad;
                m.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        match self.request(RouteNetlinkMessage::NewAddress(m), flags) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete an address; `Ok(false)` when it was not there (EADDRNOTAVAIL).
    pub fn del_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<bool> {
        let m = addr_msg(index, ip, prefix);
        match self.request(RouteNetlinkMessage::DelAddress(m), NLM_F_ACK) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `local` routes of table local (what `ip route show table local type local` lists).
    pub fn local_routes(&mut self) -> io::Result<Vec<LocalRoute>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            for r in self.routes(family)? {
                if r.header.kind != RouteType::Local || table_of(&r) != u32::from(RT_TABLE_LOCAL) {
                    continue;
                }
                let (Some(ip), Some(index)) = (dst_of(&r), oif_of(&r)) else {
                    continue;
                };
                out.push(LocalRoute {
                    index,
                    ip,
                    protocol: u8::from(r.header.protocol),
                });
            }
        }
        Ok(out)
    }

    pub fn add_local_route(&mut self, index: u32, ip: IpAddr) -> io::Result<bool> {
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        match self.request(RouteNetlinkMessage::NewRoute(local_route(index, ip)), flags) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn del_local_route(&mut self, index: u32, ip: IpAddr) -> io::Result<bool> {
        match self.request(
            RouteNetlinkMessage::DelRoute(local_route(index, ip)),
            NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn routes(&mut self, family: AddressFamily) -> io::Result<Vec<RouteMessage>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Unicast routes of the main table that contain `ip`, as (prefix length, metric,
    /// output interface or None for multipath). The caller picks the most specific.
    pub fn main_routes_to(&mut self, ip: IpAddr) -> io::Result<Vec<(u8, u32, Option<u32>)>> {
        let family = if ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let mut out = Vec::new();
        for r in self.routes(family)? {
            if r.header.kind != RouteType::Unicast
                || table_of(&r) != u32::from(RouteHeader::RT_TABLE_MAIN)
            {
                continue;
            }
            let len = r.header.destination_prefix_length;
            let contains = match dst_of(&r) {
                None => len == 0,
                Some(dst) => prefix_contains(dst, len, ip),
            };
            if !contains {
                continue;
            }
            let metric = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Priority(p) => Some(*p),
                    _ => None,
                })
                .unwrap_or(0);
            out.push((len, metric, oif_of(&r)));
        }
        Ok(out)
    }
}

fn set_rcvtimeo(sock: &Socket, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as _,
        // `as _`: the field types differ between glibc and musl (suseconds_t is deprecated there).
        tv_usec: d.subsec_micros() as _,
    };
    // SAFETY: the pointer and length describe `tv`, which outlives the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn link_of(l: LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(m) if m.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(m);
                mac = Some(b);
            }
            _ => {}
        }
    }
    let f = l.header.flags;
    Link {
        index: l.header.index,
        name,
        mac,
        up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp),
    }
}

fn addr_msg(index: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = prefix;
    m.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

fn local_route(index: u32, ip: IpAddr) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header.address_family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    r.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
    r.header.table = RT_TABLE_LOCAL;
    r.header.protocol = RouteProtocol::from(RTPROT_CLOUDVIP);
    r.header.scope = RouteScope::Host;
    r.header.kind = RouteType::Local;
    r.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(ip)));
    r.attributes.push(RouteAttribute::Oif(index));
    r.attributes
        .push(RouteAttribute::Table(u32::from(RT_TABLE_LOCAL)));
    r
}

fn table_of(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn oif_of(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn dst_of(r: &RouteMessage) -> Option<IpAddr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching() {
        let ip: IpAddr = "10.66.0.100".parse().unwrap();
        assert!(prefix_contains("10.66.0.0".parse().unwrap(), 24, ip));
        assert!(!prefix_contains("10.66.1.0".parse().unwrap(), 24, ip));
        assert!(prefix_contains("0.0.0.0".parse().unwrap(), 0, ip));
        let v6: IpAddr = "fd00:66::100".parse().unwrap();
        assert!(prefix_contains("fd00:66::".parse().unwrap(), 64, v6));
        assert!(!prefix_contains("fd00:67::".parse().unwrap(), 64, v6));
        assert!(!prefix_contains("10.66.0.0".parse().unwrap(), 24, v6));
    }
}
