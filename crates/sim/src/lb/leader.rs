//! `gce_leader` mode: where Google sends a Fast IP Move backend service's traffic. The
//! `haPolicy.leader` decides, except that a valid GARP/RA from one of the service's
//! endpoints "immediately but temporarily associates the forwarding rule IP address with
//! that VM" for about 20 minutes (`garp_window_secs`), and "The GARP/RA request always
//! takes priority over the leader API". Valid means Google's "GARP and RA packet
//! specifications": an ARP reply (op 2) with sender IP = target IP = a frontend and target
//! MAC ff:ff:ff:ff:ff:ff; an ICMPv6 RA from a link-local address to ff02::1 with hop limit
//! 255 whose every prefix-information option is exactly a frontend (/128) of this service.
//! Anything else is logged as ignored (an ARP *request* GARP is not Google's format: the
//! stricter reading). Two VMs announcing within 3 s of each other is recorded as a race
//! ("Don't send GARP/RA packets from different VM instances at the same time").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{push, LbCloud};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub mac: [u8; 6],
    pub kind: &'static str,
    pub ips: Vec<IpAddr>,
    /// Why the packet does not follow Google's specification, if it does not.
    pub invalid: Option<&'static str>,
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    m
}

pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A claim from one Ethernet frame, if it is a gratuitous ARP or a router advertisement.
pub fn parse_frame(f: &[u8]) -> Option<Claim> {
    if f.len() < 14 {
        return None;
    }
    let (dst, src) = (&f[0..6], mac(&f[6..12]));
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let p = &f[14..];
    match ethertype {
        0x0806 if p.len() >= 28 => {
            let (op, sha, spa, tha, tpa) = (
                u16::from_be_bytes([p[6], p[7]]),
                &p[8..14],
                &p[14..18],
                &p[18..24],
                &p[24..28],
            );
            if spa != tpa {
                return None; // ordinary address resolution
            }
            let ip = IpAddr::V4(Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]));
            let invalid = if op != 2 {
                Some("an ARP request, not the reply Google specifies")
            } else if tha != [0xff; 6] {
                Some("target MAC is not ff:ff:ff:ff:ff:ff")
            } else if sha != src {
                Some("ARP sender MAC differs from the frame's")
            } else if dst != [0xff; 6] {
                Some("not sent to the broadcast address")
            } else {
                None
            };
            Some(Claim {
                mac: src,
                kind: "garp",
                ips: vec![ip],
                invalid,
            })
        }
        0x86dd if p.len() >= 56 && p[6] == 58 && p[40] == 134 => {
            let hop = p[7];
            let src6 = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).ok()?);
            let dst6 = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).ok()?);
            let mut ips = Vec::new();
            let mut bad_prefix = false;
            let mut o = &p[56..];
            while o.len() >= 8 {
                let len = usize::from(o[1]) * 8;
                if len == 0 || len > o.len() {
                    break;
                }
                if o[0] == 3 && len == 32 {
                    let plen = o[2];
                    let prefix = Ipv6Addr::from(<[u8; 16]>::try_from(&o[16..32]).ok()?);
                    if plen == 128 {
                        ips.push(IpAddr::V6(prefix));
                    } else {
                        bad_prefix = true;
                    }
                }
                o = &o[len..];
            }
            let invalid = if hop != 255 {
                Some("hop limit is not 255")
            } else if dst6 != Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1) {
                Some("not sent to ff02::1")
            } else if (src6.segments()[0] & 0xffc0) != 0xfe80 {
                Some("source is not link-local")
            } else if dst != [0x33, 0x33, 0, 0, 0, 1] {
                Some("not sent to 33:33:00:00:00:01")
            } else if bad_prefix {
                Some("a prefix is not exactly one address (/128)")
            } else if ips.is_empty() {
                Some("no prefix information option")
            } else {
                None
            };
            Some(Claim {
                mac: src,
                kind: "ra",
                ips,
                invalid,
            })
        }
        _ => None,
    }
}

/// The override a valid claim sets: (backend name, since, until).
#[derive(Clone, Debug)]
pub struct Override {
    pub backend: String,
    pub at: Instant,
    pub until: Instant,
}

impl LbCloud {
    /// Weigh one claim against the backend service and take it if valid.
    pub fn claim(&self, c: &Claim) {
        let w = &self.world;
        let who = w.backends.iter().find(|b| {
            b.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(&mac_text(&c.mac)))
        });
        let Some((gce, bs)) = &self.gce else {
            return;
        };
        let frontends = gce.ha.frontends_of(bs);
        let ours = c
            .ips
            .iter()
            .any(|ip| frontends.contains(ip) || w.frontends.contains(ip));
        if !ours {
            return; // another address's announcement: not this load balancer's business
        }
        let reason = if let Some(r) = c.invalid {
            Some(r)
        } else if !gce.ha.fast_ip_move(bs) {
            Some("the backend service has no fastIPMove GARP_RA")
        } else if !c.ips.iter().all(|ip| frontends.contains(ip)) {
            Some("not every address is a forwarding rule of this backend service")
        } else if who.is_none_or(|b| !gce.ha.endpoints_of(bs).contains(&b.name)) {
            Some("the sender is no endpoint of the backend service")
        } else {
            None
        };
        let now = Instant::now();
        let mut g = self.lock();
        let name = who.map(|b| b.name.clone());
        let ev = self.event(json!({
            "kind": c.kind,
            "from": mac_text(&c.mac),
            "backend": name,
            "ips": c.ips,
            "accepted": reason.is_none(),
            "reason": reason,
        }));
        push(&mut g.garp_log, w.log_max, ev);
        let (None, Some(name)) = (reason, name) else {
            return;
        };
        if let Some(prev) = &g.garp_override {
            if prev.backend != name && now.duration_since(prev.at) < Duration::from_secs(3) {
                let race = json!({"t_ms": self.now_ms(), "backends": [prev.backend, name]});
                g.garp_races.push(race);
            }
        }
        g.garp_override = Some(Override {
            backend: name,
            at: now,
            until: now + Duration::from_secs(w.garp_window_secs),
        });
    }

    /// gce_leader: the GARP/RA sender while its re-route lasts, else the leader.
    pub(super) fn leader_round(&self) {
        let leader = self.gce.as_ref().and_then(|(g, bs)| g.ha.leader_of(bs));
        let mut g = self.lock();
        g.rounds += 1;
        let now = Instant::now();
        let by_garp = g
            .garp_override
            .as_ref()
            .filter(|o| o.until > now)
            .map(|o| o.backend.clone());
        g.leader = leader.clone();
        let targets: Vec<String> = by_garp.or(leader).into_iter().collect();
        self.route_to(&mut g, targets);
    }
}

/// Listen for GARP/RA frames on every interface (or `garp_interface`) of this namespace
/// until the emulator stops; each read waits at most 100 ms.
pub fn listen(lb: Arc<LbCloud>) {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket() returns a new descriptor or -1.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if raw < 0 {
        let e = std::io::Error::last_os_error();
        lb.lock()
            .route_errors
            .push(format!("GARP/RA listener: {e}"));
        return;
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let want_if = lb.world.garp_interface.as_ref().and_then(|n| {
        let c = std::ffi::CString::new(n.as_str()).ok()?;
        // SAFETY: a valid NUL-terminated name.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        (i != 0).then_some(i as i32)
    });
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: the pointer and length describe `tv`.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let mut buf = [0u8; 2048];
    while !lb.core.stopped() {
        // SAFETY: sockaddr_ll is plain data; zeroed is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buffer and address pointers/lengths describe live locals.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        // Frames we send ourselves (PACKET_OUTGOING) are nobody's claim.
        if n <= 0 || sll.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        if want_if.is_some_and(|i| i != sll.sll_ifindex) {
            continue;
        }
        if let Some(c) = parse_frame(&buf[..n as usize]) {
            lb.claim(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn arp(op: u16, sha: [u8; 6], ip: [u8; 4], tha: [u8; 6]) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&sha);
        p.extend_from_slice(&ip);
        p.extend_from_slice(&tha);
        p.extend_from_slice(&ip);
        p
    }

    const A: [u8; 6] = [2, 0x66, 0, 0, 0, 1];

    #[test]
    fn only_googles_garp_is_valid() {
        let ok = parse_frame(&frame(
            [0xff; 6],
            A,
            0x0806,
            &arp(2, A, [10, 66, 1, 100], [0xff; 6]),
        ))
        .unwrap();
        assert_eq!(ok.invalid, None);
        assert_eq!(ok.ips, vec![IpAddr::from([10, 66, 1, 100])]);
        let req = parse_frame(&frame(
            [0xff; 6],
            A,
            0x0806,
            &arp(1, A, [10, 66, 1, 100], [0; 6]),
        ))
        .unwrap();
        assert!(req.invalid.unwrap().contains("request"));
        let zero = parse_frame(&frame(
            [0xff; 6],
            A,
            0x0806,
            &arp(2, A, [10, 66, 1, 100], [0; 6]),
        ))
        .unwrap();
        assert!(zero.invalid.is_some());
        let mut who_has = arp(1, A, [10, 66, 0, 1], [0; 6]);
        who_has[24..28].copy_from_slice(&[10, 66, 0, 2]);
        assert_eq!(parse_frame(&frame([0xff; 6], A, 0x0806, &who_has)), None);
    }

    fn ra(hop: u8, src: Ipv6Addr, plen: u8, prefix: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 56, 58, hop];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&[134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[1, 1]);
        p.extend_from_slice(&A);
        p.extend_from_slice(&[3, 4, plen, 0, 0, 0, 4, 176, 0, 0, 4, 176, 0, 0, 0, 0]);
        p.extend_from_slice(&prefix.octets());
        p
    }

    #[test]
    fn only_googles_ra_is_valid() {
        let ll: Ipv6Addr = "fe80::66:ff:fe00:1".parse().unwrap();
        let vip: Ipv6Addr = "fd00:66:1::100".parse().unwrap();
        let mc = [0x33, 0x33, 0, 0, 0, 1];
        let ok = parse_frame(&frame(mc, A, 0x86dd, &ra(255, ll, 128, vip))).unwrap();
        assert_eq!((ok.kind, ok.invalid), ("ra", None));
        assert_eq!(ok.ips, vec![IpAddr::V6(vip)]);
        let hop = parse_frame(&frame(mc, A, 0x86dd, &ra(64, ll, 128, vip))).unwrap();
        assert!(hop.invalid.is_some());
        let global = parse_frame(&frame(
            mc,
            A,
            0x86dd,
            &ra(255, "fd00:66::1".parse().unwrap(), 128, vip),
        ))
        .unwrap();
        assert!(global.invalid.unwrap().contains("link-local"));
        let wide = parse_frame(&frame(mc, A, 0x86dd, &ra(255, ll, 64, vip))).unwrap();
        assert!(wide.invalid.unwrap().contains("/128"));
    }
}
