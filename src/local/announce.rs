//! Announcing that the VIP lives here now: gratuitous ARP requests for IPv4 (what
//! IPaddr2's send_arp sends: an ARP request with sender = target = VIP, to broadcast) and
//! unsolicited neighbour advertisements with the override flag for IPv6 (send_ua). Neighbours
//! with a cache entry for the VIP update it at once instead of after their entry times out.
//! Raw sockets through libc: ~40 lines each, no packet crate needed. The repeated
//! announcements of `arp_bg` run in a process of their own, see `announcer.rs`.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::cloud::Claimed;
use crate::deadline::Deadline;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub count: u32,
    pub interval: Duration,
    pub background: bool,
}

/// Send the announcements. Needs the proof that the cloud routes the VIP to this node:
/// announcing an address we do not hold would pull traffic into a black hole. The first
/// goes out at once; with `background` the rest are sent by an announcer process that
/// this resource owns (`announcer.rs`: stop and reload end it), else here, never past
/// the deadline.
pub fn announce(
    _proof: &Claimed,
    a: &Announcement,
    owner: Option<&std::path::Path>,
    deadline: &Deadline,
) {
    if a.count == 0 {
        return;
    }
    if let Err(e) = send_one(a) {
        // The address is configured; a lost announcement only delays neighbours.
        log::warn!("could not announce {} on ifindex {}: {e}", a.ip, a.ifindex);
        return;
    }
    log::debug!("announced {} (1 of {})", a.ip, a.count);
    if a.count == 1 {
        return;
    }
    if a.background {
        match owner {
            Some(pidfile) => match super::announcer::spawn(pidfile, a) {
                Ok(()) => return,
                Err(e) => log::warn!("could not start the announcer: {e}; sending them now"),
            },
            None => log::info!("no state directory to own an announcer in: announcing now"),
        }
    }
    for n in 2..=a.count {
        if deadline.sleep(a.interval).is_err() {
            log::info!(
                "stopped announcing {} after {} of {}: deadline",
                a.ip,
                n - 1,
                a.count
            );
            return;
        }
        if let Err(e) = send_one(a) {
            log::warn!("announcement {n} of {} for {} failed: {e}", a.count, a.ip);
        }
    }
}

/// The announcer's loop (the hidden `__announce` subcommand): announcements 2..=count.
/// Bounded: count * interval is at most 100 * 10 s.
pub fn repeat(a: &Announcement) {
    for _ in 2..=a.count {
        std::thread::sleep(a.interval);
        let _ = send_one(a);
    }
}

fn send_one(a: &Announcement) -> io::Result<()> {
    match a.ip {
        IpAddr::V4(ip) => send_garp(a.ifindex, &a.mac, ip),
        IpAddr::V6(ip) => send_unsolicited_na(a.ifindex, &a.mac, ip),
    }
}

fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket() returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(r: isize) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The 28-byte ARP payload of a gratuitous request: "who has VIP, tell VIP".
pub fn garp_payload(mac: &[u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p.extend_from_slice(&(libc::ETH_P_IP as u16).to_be_bytes());
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&1u16.to_be_bytes()); // opcode: request
    p.extend_from_slice(mac);
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&ip.octets());
    p
}

fn send_garp(ifindex: u32, mac: &[u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    send_arp(ifindex, &garp_payload(mac, ip))
}

/// One ARP payload to the broadcast address on `ifindex` (also Fast IP Move's, `fim.rs`).
pub(super) fn send_arp(ifindex: u32, p: &[u8]) -> io::Result<()> {
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SOCK_DGRAM packet socket: the kernel builds the Ethernet header from sll_addr.
    let fd = socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto))?;
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].fill(0xff);
    // SAFETY: buffer and address pointers/lengths describe live locals.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            p.as_ptr().cast(),
            p.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    check(r)
}

/// ICMPv6 type 136 with the Override flag and a target link-layer address option.
pub fn na_payload(mac: &[u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&[2, 1]);
    p.extend_from_slice(mac);
    p
}

fn send_unsolicited_na(ifindex: u32, mac: &[u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    send_icmp6_all_nodes(ifindex, &na_payload(mac, ip))
}

/// One ICMPv6 message to ff02::1 on `ifindex`, hop limit 255 (also Fast IP Move's RA).
pub(super) fn send_icmp6_all_nodes(ifindex: u32, p: &[u8]) -> io::Result<()> {
    // The kernel computes the ICMPv6 checksum on raw ICMPv6 sockets and picks the
    // interface's link-local source, so this also works in local_mode=route, where the
    // VIP is not an interface address and could not be bound.
    let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    let setopt = |opt: i32, v: i32| -> io::Result<()> {
        // SAFETY: pointer and length describe `v`.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                opt,
                (&v as *const i32).cast(),
                mem::size_of::<i32>() as u32,
            )
        };
        check(r as isize)
    };
    setopt(libc::IPV6_MULTICAST_IF, ifindex as i32)?;
    // RFC 4861 7.1.2: receivers drop NAs whose hop limit is not 255.
    setopt(libc::IPV6_MULTICAST_HOPS, 255)?;
    // SAFETY: sockaddr_in6 is plain data; zeroed is a valid value.
    let mut dst: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    dst.sin6_family = libc::AF_INET6 as u16;
    dst.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    dst.sin6_scope_id = ifindex;
    // SAFETY: buffer and address pointers/lengths describe live locals.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            p.as_ptr().cast(),
            p.len(),
            0,
            (&dst as *const libc::sockaddr_in6).cast(),
            mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    check(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_is_a_request_with_sender_equal_target() {
        let p = garp_payload(&[2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 66, 0, 100));
        assert_eq!(p.len(), 28);
        assert_eq!(&p[6..8], &[0, 1]);
        assert_eq!(&p[14..18], &p[24..28]);
    }

    #[test]
    fn na_has_override_and_tlla() {
        let p = na_payload(&[2, 0, 0, 0, 0, 1], "fd00::1".parse().unwrap());
        assert_eq!(p.len(), 32);
        assert_eq!((p[0], p[4]), (136, 0x20));
        assert_eq!(&p[24..26], &[2, 1]);
    }
}
