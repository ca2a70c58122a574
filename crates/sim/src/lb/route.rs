//! Where the frontend IP's packets go, in the load balancer's own network namespace: a host
//! route to the chosen backend's address, so packets keep the frontend IP as destination
//! (floating IP / direct server return: the backend must hold the VIP itself to accept
//! them). No backend: a blackhole route (the load balancer drops new flows). Several: one
//! multipath route (the kernel spreads flows, as a load balancer would). Through iproute2.

use std::net::IpAddr;
use std::process::Command;

fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

fn ip(args: &[String]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Route `frontend` to `via` (addresses of its own family only).
pub fn set(frontend: IpAddr, via: &[IpAddr]) -> Result<(), String> {
    let via: Vec<&IpAddr> = via
        .iter()
        .filter(|a| a.is_ipv4() == frontend.is_ipv4())
        .collect();
    let mut args: Vec<String> = vec![family(frontend).into(), "route".into(), "replace".into()];
    match via.as_slice() {
        [] => args.extend(["blackhole".into(), prefix(frontend)]),
        [one] => args.extend([prefix(frontend), "via".into(), one.to_string()]),
        many => {
            args.push(prefix(frontend));
            for a in many {
                args.extend(["nexthop".into(), "via".into(), a.to_string()]);
            }
        }
    }
    ip(&args)
}

/// Remove the frontend's route (at stop).
pub fn clear(frontend: IpAddr) {
    let _ = ip(&[
        family(frontend).into(),
        "route".into(),
        "del".into(),
        prefix(frontend),
    ]);
}

/// Forward, and never tell a client to go to the backend directly: an ICMP redirect would
/// let the client bypass the load balancer (client and backends may share a segment).
pub fn enable_forwarding() -> Result<(), String> {
    let write = |p: &str, v: &str| std::fs::write(p, v).map_err(|e| format!("{p}: {e}"));
    write("/proc/sys/net/ipv4/ip_forward", "1")?;
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    if let Ok(dirs) = std::fs::read_dir("/proc/sys/net/ipv4/conf") {
        for d in dirs.flatten() {
            let p = d.path().join("send_redirects");
            let _ = std::fs::write(p, "0");
        }
    }
    Ok(())
}
