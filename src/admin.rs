//! The admin CLI for humans, beside the OCF actions Pacemaker calls: parameters from
//! `--param NAME=VALUE` and `--config FILE` (so any action can run outside Pacemaker, e.g.
//! as a database failover callback or a keepalived notify script), `status` (who holds the
//! VIP, locally and in the cloud) and `diagnose` (what is missing and how to fix it).
//! `status` and `diagnose` are not OCF actions: their exit codes are 0 (all good) and 1.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::cloud::{self, Nic, Op, Step, Verdict};
use crate::deadline::Deadline;
use crate::local::{Local, Presence};
use crate::ocf::env::OcfEnv;
use crate::ocf::{Action, Exit, Status};
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "this node".into())
}

/// What `status` and a dry run show first: who holds the VIP, on this node and in the
/// cloud, as table rows, and what that means for this node.
struct Seen {
    rows: Vec<[String; 4]>,
    /// The address (route) is on this node; `None` with local_mode=none.
    here_local: Option<bool>,
    /// The cloud routes the VIP here; `None` for cloud=none or when it could not be read.
    here_cloud: Option<bool>,
    cloud_error: Option<String>,
    /// Who the cloud routes the VIP to when not here: the VIP's own row (the first).
    elsewhere: Option<String>,
}

fn seen(
    params: &Params,
    inspector: Option<&mut Box<dyn cloud::Inspect>>,
    local: &mut Local,
    nic: Option<&Nic>,
    deadline: &Deadline,
) -> anyhow::Result<Seen> {
    let mut s = Seen {
        rows: Vec::new(),
        here_local: None,
        here_cloud: None,
        cloud_error: None,
        elsewhere: None,
    };
    if local.mode() != LocalMode::None {
        let (holder, ours) = match local.presence()? {
            Presence::On(ifs) => (ifs.join(", "), true),
            Presence::Absent => ("-".into(), false),
        };
        s.here_local = Some(ours);
        let what = match local.mode() {
            LocalMode::Route => format!("local route {}", params.ip),
            _ => format!("address {}/{}", params.ip, params.prefix),
        };
        s.rows.push([
            format!("local ({})", hostname()),
            what,
            holder,
            yes(ours).into(),
        ]);
    }
    let cloud = cloud::resolve_kind(params.cloud).name();
    if let Some(backend) = inspector {
        match backend.holders(nic, deadline) {
            Ok(hs) => {
                s.here_cloud = Some(hs.iter().any(|h| h.ours));
                s.elsewhere = hs
                    .first()
                    .filter(|h| h.held && !h.ours)
                    .map(|h| h.holder.clone());
                for h in hs {
                    s.rows
                        .push([cloud.into(), h.what, h.holder, yes(h.ours).into()]);
                }
            }
            Err(e) => {
                s.cloud_error = Some(e.to_string());
                s.rows.push([
                    cloud.into(),
                    format!("{}", params.ip),
                    "? (cloud not readable, see below)".into(),
                    "?".into(),
                ]);
            }
        }
    }
    Ok(s)
}

/// The columns of the holders table that status and a dry run print.
const HOLDERS: [&str; 4] = ["WHERE", "WHAT", "HOLDER", "THIS NODE"];

/// `cloudvip status`: one table, local and cloud. Ok(true) when this node holds the VIP
/// everywhere it should.
pub fn status(env: &OcfEnv) -> anyhow::Result<bool> {
    let params = Params::parse(env)?;
    let deadline = Deadline::for_timeout(env.timeout());
    let state = env.state_dir();
    let mut inspector = cloud::inspector(&params, state.as_deref())?;
    let mut local = Local::open(&params, state, &deadline)?;
    let nic = local.resolve_nic(params.nic.as_deref());
    let cnic = nic.as_ref().ok().map(Nic::from);
    let seen = seen(
        &params,
        inspector.as_mut(),
        &mut local,
        cnic.as_ref(),
        &deadline,
    )?;
    let mut out = format!(
        "VIP {} (cloud={}, nic={})\n\n",
        params.ip,
        cloud::resolve_kind(params.cloud).name(),
        match &nic {
            Ok(l) => l.name.clone(),
            Err(e) => format!("? ({e:#})"),
        }
    );
    out.push_str(&table(&HOLDERS, &seen.rows));
    let verdict = match (seen.here_local, seen.here_cloud) {
        _ if seen.cloud_error.is_some() => {
            format!(
                "the cloud could not be read: {}\nrun `cloudvip diagnose` with the same parameters",
                seen.cloud_error.unwrap_or_default()
            )
        }
        (Some(true), None | Some(true)) | (None, Some(true)) => "this node serves the VIP".into(),
        (Some(false) | None, None) => "this node does not serve the VIP".into(),
        (Some(false) | None, Some(false)) => match &seen.elsewhere {
            Some(h) => format!("this node does not serve the VIP: the cloud routes it to {h}"),
            None => "this node does not serve the VIP, and nobody holds it in the cloud \
                     (`cloudvip start` on a node claims it)"
                .into(),
        },
        (Some(true), Some(false)) => match &seen.elsewhere {
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

/// One step of a dry run's plan.
enum Item {
    /// A cloud API call that changes something.
    Call(String, String),
    /// A change of this node's kernel state (netlink, the announcer).
    Node(String),
    /// What the action does that changes no state: announcements, decisions.
    Note(String),
}

impl Item {
    fn changes(&self) -> bool {
        !matches!(self, Item::Note(_))
    }
}

fn planned(p: cloud::Planned) -> Item {
    match p.call {
        Some(c) => Item::Call(c, p.what),
        None => Item::Note(p.what),
    }
}

/// `cloudvip start|stop|migrate_from --dry-run`: who holds the VIP now, then the changes
/// the action would make, in its order, decided by the action's own checks and the
/// backends' `plan` (read-only calls only). Nothing changes. Errors are the action's own:
/// a check that would fail the start fails the dry run with the same exit code.
pub fn dry_run(env: &OcfEnv, action: Action) -> anyhow::Result<Status> {
    let starting = match action {
        Action::Start | Action::MigrateFrom => true,
        Action::Stop => false,
        other => {
            return Err(Exit::args(format!(
                "--dry-run previews start, stop and migrate_from, not {other:?} (which changes \
                 nothing anyway or is not for a VIP's move)"
            ))
            .into())
        }
    };
    let verb = if starting { "start" } else { "stop" };
    let params = match Params::parse(env) {
        Ok(p) => p,
        // Stop with invalid parameters reports success and changes nothing.
        Err(e) if !starting => {
            println!("dry run of stop: the parameters are invalid ({e}); stop would change nothing and report success");
            return Ok(Status::Success);
        }
        Err(e) => return Err(e.into()),
    };
    let deadline = Deadline::for_timeout(env.timeout());
    let state = env.state_dir();
    let mut backend = cloud::backend(&params, state.as_deref())?;
    let mut inspector = cloud::inspector(&params, state.as_deref())?;
    let mut local = Local::open(&params, state.clone(), &deadline)?;
    let link = local.resolve_nic(params.nic.as_deref());
    let link = match link {
        Ok(l) => Some(l),
        Err(e) if starting => return Err(e),
        // Stop removes the VIP wherever it is; it needs no interface.
        Err(_) => None,
    };
    let cnic = link.as_ref().map(Nic::from);
    let seen = seen(
        &params,
        inspector.as_mut(),
        &mut local,
        cnic.as_ref(),
        &deadline,
    )?;
    let mut out = format!(
        "Dry run of {verb} on {}: VIP {} (cloud={}, nic={}); nothing is changed.\n\nNow:\n",
        hostname(),
        params.ip,
        backend.name(),
        link.as_ref().map_or("?", |l| l.name.as_str())
    );
    out.push_str(&table(&HOLDERS, &seen.rows));
    if let Some(e) = &seen.cloud_error {
        let _ = writeln!(out, "(the cloud could not be read: {e})");
    }
    let mut items: Vec<Item> = Vec::new();
    if let (true, Some(nic), Some(cn)) = (starting, &link, &cnic) {
        crate::agent::before_start(&params, &mut local, nic, backend.as_mut(), &deadline)?;
        let claim = backend
            .plan(Op::Claim, cn, &deadline)
            .map_err(|e| crate::agent::cloud_exit(e.at("claim")))?;
        items.extend(claim.into_iter().map(planned));
        let here = matches!(local.presence()?, Presence::On(_));
        match local.mode() {
            LocalMode::None => {}
            _ if here => items.push(Item::Note(format!(
                "{} is already on {}: no netlink change",
                params.ip, nic.name
            ))),
            LocalMode::Address => items.push(Item::Node(format!(
                "netlink: add {}/{} to {}{}",
                params.ip,
                params.prefix,
                nic.name,
                params
                    .label
                    .as_ref()
                    .map(|l| format!(" with label {l}"))
                    .unwrap_or_default()
            ))),
            LocalMode::Route => items.push(Item::Node(format!(
                "netlink: add a local route for {} on {} (table local, protocol 167)",
                params.ip, nic.name
            ))),
        }
        if params.arp_count > 0 && nic.mac.is_some() {
            let what = if params.ip.is_ipv4() {
                "gratuitous ARP(s)"
            } else {
                "unsolicited neighbour advertisement(s)"
            };
            items.push(Item::Note(format!(
                "announce {} on {}: {} {what}, {} ms apart{}",
                params.ip,
                nic.name,
                params.arp_count,
                params.arp_interval.as_millis(),
                if params.arp_bg {
                    ", in the background"
                } else {
                    ""
                }
            )));
        }
        let extras = backend
            .plan(Op::Extras, cn, &deadline)
            .map_err(|e| crate::agent::cloud_exit(e.at("public IP")))?;
        items.extend(extras.into_iter().map(planned));
    } else {
        let pidfile = state
            .as_deref()
            .map(|d| crate::local::announcer::pidfile(d, params.ip));
        if pidfile.is_some_and(|p| p.exists()) {
            items.push(Item::Node(format!(
                "end the background announcements of {}",
                params.ip
            )));
        }
        if let Presence::On(ifs) = local.presence()? {
            for i in ifs {
                items.push(Item::Node(match local.mode() {
                    LocalMode::Route => {
                        format!("netlink: delete the local route for {} on {i}", params.ip)
                    }
                    _ => format!("netlink: delete {} from {i}", params.ip),
                }));
            }
        }
        let none = Nic {
            name: "?".into(),
            mac: None,
        };
        let release = backend
            .plan(
                Op::Release,
                cnic.as_ref().unwrap_or(&none),
                &deadline.within(crate::agent::STOP_RELEASE_BUDGET),
            )
            .map_err(|e| crate::agent::cloud_exit(e.at("release")))?;
        items.extend(release.into_iter().map(planned));
    }
    let n = items.iter().filter(|i| i.changes()).count();
    let _ = writeln!(
        out,
        "\n{}",
        match (n, starting) {
            (0, true) => "start would change nothing: the VIP is already here".to_owned(),
            (0, false) => "stop would change nothing: the VIP is not here".to_owned(),
            (n, _) => format!("{verb} would make {n} change(s):"),
        }
    );
    for (i, item) in items.iter().enumerate() {
        let _ = match item {
            Item::Call(call, what) => writeln!(out, "{:>3}. {call}\n     {what}", i + 1),
            Item::Node(what) => writeln!(out, "{:>3}. {what}", i + 1),
            Item::Note(what) => writeln!(out, "{:>3}. ({what})", i + 1),
        };
    }
    print!("{out}");
    Ok(Status::Success)
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
                format!("ip={} cloud={} valid", p.ip, p.cloud.name()).to_lowercase(),
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
    let inspector = match cloud::inspector(&params, state.as_deref()) {
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
    let cnic = link.as_ref().ok().map(Nic::from);
    let mut cloud_steps = match inspector {
        Some(mut b) => cloud::inspect::diagnose(b.as_mut(), cnic.as_ref(), &deadline),
        None => vec![Step::pass(
            "cloud",
            "cloud=none: nothing to check in a cloud",
        )],
    };
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
