//! The admin CLI for humans, beside the OCF actions Pacemaker calls: parameters from
//! `--param NAME=VALUE` and `--config FILE` (so any action can run outside Pacemaker, e.g.
//! as a database failover callback or a keepalived notify script), `status` (who holds the
//! VIP, locally and in the cloud) and `diagnose` (what is missing and how to fix it).
//! `status` and `diagnose` are not OCF actions: their exit codes are 0 (all good) and 1.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::cloud::{self, Nic, Step, Verdict};
use crate::deadline::Deadline;
use crate::local::{Local, Presence};
use crate::ocf::env::OcfEnv;
use crate::ocf::Exit;
use crate::params::{LocalMode, Params};

/// One `NAME=VALUE` from a file or `--param`: a parameter that is not UTF-8 is kept as
/// bytes so that `Params::parse` can refuse it by name (and stop can skip it).
#[derive(Debug, PartialEq, Eq)]
pub enum Setting {
    Text(String, String),
    Unreadable(String, String),
}

/// Parameters from a file: `NAME=VALUE` lines (also `OCF_RESKEY_NAME=VALUE`, so an
/// environment file works), `#` comments, optional quotes around the value. Read as bytes:
/// a line that is not UTF-8 is reported as that parameter's problem, not the file's.
pub fn parse_config(text: &[u8], origin: &str) -> Result<Vec<Setting>, Exit> {
    let mut out = Vec::new();
    for (n, raw) in text.split(|b| *b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(raw) else {
            let lossy = String::from_utf8_lossy(raw);
            let (k, v) = lossy.split_once('=').ok_or_else(|| {
                Exit::configured(format!(
                    "{origin} line {}: expected NAME=VALUE (and the line is not UTF-8)",
                    n + 1
                ))
            })?;
            out.push(Setting::Unreadable(name_of(k), v.trim().to_owned()));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or_else(|| {
            Exit::configured(format!(
                "{origin} line {}: expected NAME=VALUE, got {line:?}",
                n + 1
            ))
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.push(Setting::Text(name_of(k), v.to_owned()));
    }
    Ok(out)
}

fn name_of(k: &str) -> String {
    let k = k.trim();
    k.strip_prefix("OCF_RESKEY_").unwrap_or(k).to_owned()
}

/// Apply `--config FILE`, then `--param`s (which win), then `--timeout` to the environment.
/// `OCF_CHECK_LEVEL` may be given like a parameter.
pub fn apply(
    env: &mut OcfEnv,
    config: Option<&Path>,
    params: &[OsString],
    timeout_secs: Option<u64>,
) -> Result<(), Exit> {
    let mut settings = Vec::new();
    if let Some(path) = config {
        let text = std::fs::read(path).map_err(|e| {
            Exit::configured(format!("cannot read --config {}: {e}", path.display()))
        })?;
        settings.extend(parse_config(&text, &path.display().to_string())?);
    }
    for p in params {
        let lossy = p.to_string_lossy();
        let (k, v) = lossy.split_once('=').ok_or_else(|| {
            Exit::configured(format!(
                "--param {lossy:?}: expected NAME=VALUE, e.g. ip=10.0.0.250"
            ))
        })?;
        settings.push(match p.to_str() {
            Some(_) => Setting::Text(k.trim().to_owned(), v.to_owned()),
            None => Setting::Unreadable(k.trim().to_owned(), v.to_owned()),
        });
    }
    for s in settings {
        match s {
            Setting::Text(k, v) if k == "OCF_CHECK_LEVEL" => {
                env.check_level = v.trim().parse().map_err(|_| {
                    Exit::configured(format!(
                        "OCF_CHECK_LEVEL={v:?}: expected a number (0 or 10)"
                    ))
                })?;
            }
            Setting::Text(k, v) => {
                env.unreadable.remove(&k);
                env.params.insert(k, v);
            }
            Setting::Unreadable(k, v) => {
                env.params.remove(&k);
                env.unreadable.insert(k, v);
            }
        }
    }
    if let Some(t) = timeout_secs {
        env.meta
            .insert("timeout".into(), t.saturating_mul(1000).to_string());
    }
    if env.instance.is_none() {
        env.instance = Some("cli".into());
    }
    Ok(())
}

fn nic_of(link: &crate::local::netlink::Link) -> Nic {
    Nic {
        name: link.name.clone(),
        mac: link.mac,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "this node".into())
}

/// `cloudvip status`: one table, local and cloud. Ok(true) when this node holds the VIP
/// everywhere it should.
pub fn status(env: &OcfEnv) -> anyhow::Result<bool> {
    let params = Params::parse(env)?;
    let deadline = Deadline::for_timeout(env.timeout());
    let state = env.state_dir();
    let mut backend = cloud::backend(&params, state.as_deref())?;
    let mut local = Local::open(&params, state, &deadline)?;
    let nic = local.resolve_nic(params.nic.as_deref());
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut here_local = None;
    if local.mode() != LocalMode::None {
        let (holder, ours) = match local.presence()? {
            Presence::On(ifs) => (ifs.join(", "), true),
            Presence::Absent => ("-".into(), false),
        };
        here_local = Some(ours);
        let what = match local.mode() {
            LocalMode::Route => format!("local route {}", params.ip),
            _ => format!("address {}/{}", params.ip, params.prefix),
        };
        rows.push([
            format!("local ({})", hostname()),
            what,
            holder,
            yes(ours).into(),
        ]);
    }
    let mut here_cloud = None;
    let mut cloud_error = None;
    // Who the cloud routes the VIP to when not here: the VIP's own row (the first).
    let mut elsewhere = None;
    if backend.name() != "none" {
        let cnic = nic.as_ref().ok().map(nic_of);
        match backend.holders(cnic.as_ref(), &deadline) {
            Ok(hs) => {
                here_cloud = Some(hs.iter().any(|h| h.ours));
                elsewhere = hs
                    .first()
                    .filter(|h| h.held && !h.ours)
                    .map(|h| h.holder.clone());
                for h in hs {
                    rows.push([backend.name().into(), h.what, h.holder, yes(h.ours).into()]);
                }
            }
            Err(e) => {
                cloud_error = Some(e.to_string());
                rows.push([
                    backend.name().into(),
                    format!("{}", params.ip),
                    "? (cloud not readable, see below)".into(),
                    "?".into(),
                ]);
            }
        }
    }
    let mut out = format!(
        "VIP {} (cloud={}, nic={})\n\n",
        params.ip,
        backend.name(),
        match &nic {
            Ok(l) => l.name.clone(),
            Err(e) => format!("? ({e:#})"),
        }
    );
    out.push_str(&table(&["WHERE", "WHAT", "HOLDER", "THIS NODE"], &rows));
    let verdict = match (here_local, here_cloud) {
        _ if cloud_error.is_some() => {
            format!(
                "the cloud could not be read: {}\nrun `cloudvip diagnose` with the same parameters",
                cloud_error.unwrap_or_default()
            )
        }
        (Some(true), None | Some(true)) | (None, Some(true)) => "this node serves the VIP".into(),
        (Some(false) | None, None) => "this node does not serve the VIP".into(),
        (Some(false) | None, Some(false)) => match &elsewhere {
            Some(h) => format!("this node does not serve the VIP: the cloud routes it to {h}"),
            None => "this node does not serve the VIP, and nobody holds it in the cloud                      (`cloudvip start` on a node claims it)"
                .into(),
        },
        (Some(true), Some(false)) => match &elsewhere {
            Some(h) => format!("inconsistent: the address is here but the cloud routes the VIP to {h} (Pacemaker's monitor reports an error; `cloudvip start` here claims it)"),
            None => "inconsistent: the address is here but nobody holds the VIP in the cloud (`cloudvip start` here claims it)".into(),
        },
        (Some(false), Some(true)) => "inconsistent: the cloud routes the VIP here but the address is missing (`cloudvip start` adds it)".into(),
    };
    let ok = verdict == "this node serves the VIP";
    let _ = writeln!(out, "\n{verdict}");
    print!("{out}");
    Ok(ok)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A plain-text table with columns padded to their widest cell.
pub fn table(head: &[&str], rows: &[[String; 4]]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<width$}  ", width = w[i]);
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut s, head.to_vec());
    for r in rows {
        line(&mut s, r.iter().map(String::as_str).collect());
    }
    s
}

/// `cloudvip diagnose`: parameters, then the cloud's checks in order (metadata,
/// credentials, permissions, NIC, subnet). Ok(true) when every check passes.
pub fn diagnose(env: &OcfEnv) -> anyhow::Result<bool> {
    let mut steps: Vec<Step> = Vec::new();
    let params = match Params::parse(env) {
        Ok(p) => {
            steps.push(Step::pass(
                "parameters",
                format!("ip={} cloud={:?} valid", p.ip, p.cloud).to_lowercase(),
            ));
            p
        }
        Err(e) => {
            steps.push(Step::fail(
                "parameters",
                e.reason,
                "fix the parameter (`cloudvip meta-data` or man ocf_rust_cloudvip lists them all)",
            ));
            return Ok(report(&steps));
        }
    };
    let deadline = Deadline::for_timeout(env.timeout());
    let state = env.state_dir();
    let mut backend = match cloud::backend(&params, state.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            steps.push(Step::fail(
                "backend",
                e.reason,
                "check the files the parameters name (ca_bundle=, credentials=)",
            ));
            return Ok(report(&steps));
        }
    };
    let mut local =
        Local::open(&params, state, &deadline).context("diagnose needs root (netlink)")?;
    let link = local.resolve_nic(params.nic.as_deref());
    let cnic = link.as_ref().ok().map(nic_of);
    let mut cloud_steps = backend.diagnose(cnic.as_ref(), &deadline);
    if let Err(e) = &link {
        let step = Step::fail(
            "nic",
            format!("{e:#}"),
            "set nic= to an interface of this node (`ip -br link`), the one whose MAC is the \
             cloud NIC's",
        );
        match cloud_steps.iter_mut().find(|s| s.name == "nic") {
            Some(s) => *s = step,
            None => cloud_steps.push(step),
        }
    } else if let Ok(l) = &link {
        if !l.up && local.mode() != LocalMode::None {
            cloud_steps.push(Step::fail(
                "link",
                format!("{} is down or has no carrier", l.name),
                format!("ip link set {} up; check the cable / virtual NIC", l.name),
            ));
        }
    }
    steps.extend(cloud_steps);
    // Other software that removes or fights the VIP (src/os_agents.rs).
    if let Ok(l) = &link {
        let vip = crate::os_agents::Vip::of(&params, &l.name);
        steps.extend(crate::os_agents::steps(std::path::Path::new("/"), &vip));
    }
    Ok(report(&steps))
}

fn report(steps: &[Step]) -> bool {
    let mut out = String::new();
    let mut ok = true;
    for (i, s) in steps.iter().enumerate() {
        let (tag, text) = match &s.verdict {
            Verdict::Pass(t) => ("ok", t.clone()),
            Verdict::Skip(t) => ("skip", t.clone()),
            Verdict::Fail { problem, .. } => {
                ok = false;
                ("FAIL", problem.clone())
            }
        };
        let _ = writeln!(out, "{:>2}. {:<12} {:<5} {text}", i + 1, s.name, tag);
        if let Verdict::Fail { fix, .. } = &s.verdict {
            let _ = writeln!(out, "    {:<12} fix:  {fix}", "");
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        if ok {
            "all checks passed"
        } else {
            "some checks failed: see fix: above"
        }
    );
    print!("{out}");
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files() {
        let got = parse_config(
            b"# a VIP\nip=10.0.0.250\nOCF_RESKEY_cloud=\"gce\"\nexport nic='eth0'\n\nlabel=v\xff\n",
            "f",
        )
        .unwrap();
        let t = |k: &str, v: &str| Setting::Text(k.into(), v.into());
        assert_eq!(
            got,
            vec![
                t("ip", "10.0.0.250"),
                t("cloud", "gce"),
                t("nic", "eth0"),
                Setting::Unreadable("label".into(), "v\u{fffd}".into()),
            ]
        );
        let e = parse_config(b"ip 10.0.0.1\n", "f").unwrap_err();
        assert!(e.reason.contains("f line 1"), "{}", e.reason);
    }

    #[test]
    fn params_win_over_the_file_and_set_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("vip.conf");
        std::fs::write(&f, "ip=10.0.0.1\nnic=eth0\nOCF_CHECK_LEVEL=10\n").unwrap();
        let mut env = OcfEnv::default();
        apply(&mut env, Some(&f), &["ip=10.0.0.2".into()], Some(30)).unwrap();
        assert_eq!(env.param("ip"), Some("10.0.0.2"));
        assert_eq!(env.param("nic"), Some("eth0"));
        assert_eq!(env.check_level, 10);
        assert_eq!(env.timeout(), Some(std::time::Duration::from_secs(30)));
        assert!(apply(&mut env, None, &["ip".into()], None).is_err());
        use std::os::unix::ffi::OsStringExt as _;
        let bad = OsString::from_vec(b"nic=eth\xff".to_vec());
        apply(&mut env, None, &[bad], Some(u64::MAX)).unwrap();
        assert_eq!(env.param("nic"), None);
        assert!(env.unreadable.contains_key("nic"));
        assert!(Params::parse(&env)
            .unwrap_err()
            .reason
            .contains("nic is not valid UTF-8"));
    }
}
