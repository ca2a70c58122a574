//! The meta-data XML, generated from a parameter table (`ParamDef`: the OCF schema of a
//! parameter; the agent's table is `params::all()`) and `ACTIONS` so that the XML, the
//! README table and the man page cannot drift apart. This module knows no parameter.
//!
//! Two readers with two schemas: ocf-tester validates against resource-agents'
//! `ra-api-1.dtd` (OCF 1.0: no `unique-group`), while pcs 0.11 reads an OCF 1.1 agent's
//! uniqueness only from `unique-group` and ignores the deprecated `unique`
//! (pcs/lib/resource_agent/xml.py, types.py: "OCF 1.1 defines "unique" as well, but it is
//! deprecated and we ignore it"). So a unique parameter carries both, and the DOCTYPE's
//! internal subset declares the OCF 1.1 attribute on top of the external DTD (XML merges
//! attribute-list declarations), which keeps the document valid for `xmllint --valid`.
//! The same goes for OCF 1.1's `reloadable` and the `reload-agent` action: the internal
//! subset comes first, so its list of action names is the one that binds.

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    String,
    Integer,
    Boolean,
}

impl Content {
    pub fn as_str(self) -> &'static str {
        match self {
            Content::String => "string",
            Content::Integer => "integer",
            Content::Boolean => "boolean",
        }
    }
}

/// Where a parameter applies: a cloud by its `cloud=` value (and label for the documents),
/// in every mode of that cloud or only in some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Where {
    pub cloud: &'static str,
    /// How the documents name the cloud ("GCE only.").
    pub label: &'static str,
    /// The modes (`mode=`) it applies in; empty: every mode of the cloud.
    pub modes: &'static [&'static str],
}

impl Where {
    /// Every mode of `cloud`.
    pub const fn cloud(cloud: &'static str, label: &'static str) -> Where {
        Where {
            cloud,
            label,
            modes: &[],
        }
    }
}

/// Which resources a parameter applies to. Data, not prose: the documents' "GCE only."
/// and the refusal of a parameter set where it does not apply both come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every resource.
    All,
    /// Every cloud backend (not cloud=none).
    Clouds,
    /// These clouds (and modes) only.
    Only(&'static [Where]),
}

impl Scope {
    /// Does a parameter of this scope apply to `cloud` (`None`: cloud=none) in `mode`?
    pub fn applies(&self, cloud: Option<&str>, mode: &str) -> bool {
        match (self, cloud) {
            (Scope::All, _) => true,
            (Scope::Clouds, c) => c.is_some(),
            (Scope::Only(ws), Some(c)) => ws
                .iter()
                .any(|w| w.cloud == c && (w.modes.is_empty() || w.modes.contains(&mode))),
            (Scope::Only(_), None) => false,
        }
    }

    /// Where it applies, as `cloud=gce` or `cloud=aws mode=eip` (joined by " or ").
    pub fn places(&self) -> Option<String> {
        let Scope::Only(ws) = self else { return None };
        let one = |w: &Where| match w.modes {
            [] => format!("cloud={}", w.cloud),
            ms => format!("cloud={} mode={}", w.cloud, ms.join("|")),
        };
        Some(ws.iter().map(one).collect::<Vec<_>>().join(" or "))
    }

    /// The documents' words for it: "GCE" or "AWS mode=eip" (joined by " and "); `None`
    /// when it applies more widely than some clouds.
    fn label(&self) -> Option<String> {
        let Scope::Only(ws) = self else { return None };
        let one = |w: &Where| match w.modes {
            [] => w.label.to_owned(),
            ms => format!("{} mode={}", w.label, ms.join("|")),
        };
        Some(ws.iter().map(one).collect::<Vec<_>>().join(" and "))
    }
}

/// One `<parameter>` of the meta-data.
#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub content: Content,
    /// The default as shown to users; `None` when it depends on other parameters or the host.
    pub default: Option<&'static str>,
    pub required: bool,
    pub unique: bool,
    /// OCF 1.1: a change of this parameter alone needs no stop and start (Pacemaker runs
    /// `reload-agent`). Only for parameters that neither place the VIP nor name the account
    /// and the cloud that hold it.
    pub reloadable: bool,
    /// Where it stands among all the agent's parameters (meta-data, README, man page):
    /// ascending. The common parameters, the backends' shared ones and each backend's own
    /// are defined in different files; this keeps the documents in one order.
    pub order: u16,
    /// A valid value, for the tests (never written to the meta-data): each parameter's
    /// own test proves that parsing it changes the result.
    pub example: &'static str,
    /// Which resources it applies to; the documents' shortdesc and longdesc say so first
    /// ("GCE: ...", "GCE only. ..."), so the texts here do not.
    pub scope: Scope,
    /// Another parameter it acts on, said in the documents ("GCE only, with public_ip.").
    pub with: Option<&'static str>,
}

impl ParamDef {
    /// An optional, non-unique, non-reloadable parameter.
    pub const fn new(
        name: &'static str,
        content: Content,
        default: Option<&'static str>,
        shortdesc: &'static str,
        longdesc: &'static str,
    ) -> ParamDef {
        ParamDef {
            name,
            shortdesc,
            longdesc,
            content,
            default,
            required: false,
            unique: false,
            reloadable: false,
            order: 0,
            example: "",
            scope: Scope::All,
            with: None,
        }
    }

    /// The shortdesc as the documents show it: "GCE: " first for one cloud's parameter.
    pub fn short_text(&self) -> String {
        match self.scope.label() {
            Some(l) => format!("{l}: {}", self.shortdesc),
            None => self.shortdesc.to_owned(),
        }
    }

    /// The longdesc as the documents show it: "GCE only. " (or "GCE only, with
    /// public_ip. ") first for one cloud's parameter.
    pub fn long_text(&self) -> String {
        match (self.scope.label(), self.with) {
            (Some(l), Some(w)) => format!("{l} only, with {w}. {}", self.longdesc),
            (Some(l), None) => format!("{l} only. {}", self.longdesc),
            (None, _) => self.longdesc.to_owned(),
        }
    }
}

pub struct ActionDef {
    pub name: &'static str,
    pub timeout: &'static str,
    pub interval: Option<&'static str>,
    pub depth: Option<&'static str>,
}

const fn a(name: &'static str, timeout: &'static str) -> ActionDef {
    ActionDef {
        name,
        timeout,
        interval: None,
        depth: None,
    }
}

/// Suggested timeouts. start and stop get 60 s: a cloud move is a few API operations of
/// seconds each, and every retry inside is budgeted from the real timeout anyway, so a
/// longer timeout only gives the cloud more chances, it never makes the agent slower.
pub const ACTIONS: &[ActionDef] = &[
    a("start", "60s"),
    a("stop", "60s"),
    ActionDef {
        interval: Some("10s"),
        depth: Some("0"),
        ..a("monitor", "20s")
    },
    a("migrate_to", "60s"),
    a("migrate_from", "60s"),
    a("reload", "20s"),
    a("reload-agent", "20s"),
    a("meta-data", "5s"),
    a("validate-all", "20s"),
];

const SHORTDESC: &str = "Moves a virtual IP between nodes on GCE, OCI or a plain LAN";

const LONGDESC: &str = "cloudvip moves a virtual IP address (IPv4 or IPv6) to the node where \
Pacemaker starts it. On Google Compute Engine it moves an alias IP range between the NICs of \
the cluster's instances (and optionally a static external IP); on Oracle Cloud it moves a \
secondary private IP between VNICs (and optionally a reserved public IP); on AWS it moves a \
secondary private IP between ENIs (and its Elastic IP), an Elastic IP alone, or an overlay IP's \
route in route tables (mode=); with cloud=none it \
works like IPaddr2. On the node it adds the address (or a local route) through netlink and \
announces it with gratuitous ARP or unsolicited neighbour advertisements. \
monitor at depth 0 costs no cloud API call: it reads the kernel's state, and on GCE the \
metadata server's view of the NIC (one link-local request), on AWS IMDS's. With OCF_CHECK_LEVEL=10 (a second \
monitor operation, e.g. every 60 s) it also asks the cloud API: one instances.get on GCE; on OCI, \
whose metadata service lists no secondary IPs, one ListPrivateIps query (2-3 signed calls, plus \
one federation call when the cached instance-principal token is near expiry); on AWS one \
Describe call per thing the mode moves. \
A transient cloud or network error is never reported as 'not running', and stop never \
fails because a cloud API is slow: every action finishes within its timeout.";

/// ra-api-1.dtd plus the OCF 1.1 attributes and action this agent uses (the DTD's
/// action names and reload-agent).
const DOCTYPE: &str = "resource-agent SYSTEM \"ra-api-1.dtd\" [\n\
  <!ATTLIST parameter unique-group CDATA #IMPLIED reloadable (1|0) \"0\">\n\
  <!ATTLIST action name (start|stop|recover|monitor|restart|migrate_to|migrate_from|promote|\
demote|notify|status|reload|reload-agent|meta-data|usage|methods|validate-all) #REQUIRED>\n]";

pub fn xml(params: &[&ParamDef]) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail; the Result type is quick-xml's I/O plumbing.
    let _ = write(&mut w, params);
    let mut s = String::from_utf8_lossy(&w.into_inner()).into_owned();
    s.push('\n');
    s
}

fn write(w: &mut Writer<Vec<u8>>, params: &[&ParamDef]) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    w.write_event(Event::DocType(BytesText::from_escaped(DOCTYPE)))?;
    w.create_element("resource-agent")
        .with_attributes([("name", "cloudvip"), ("version", env!("CARGO_PKG_VERSION"))])
        .write_inner_content(|w| {
            // The OCF version this agent implements, not the agent's own version.
            w.create_element("version")
                .write_text_content(BytesText::new("1.1"))?;
            desc(w, "longdesc", LONGDESC)?;
            desc(w, "shortdesc", SHORTDESC)?;
            w.create_element("parameters").write_inner_content(|w| {
                for p in params {
                    parameter(w, p)?;
                }
                Ok(())
            })?;
            w.create_element("actions").write_inner_content(|w| {
                for act in ACTIONS {
                    let mut attrs = vec![("name", act.name), ("timeout", act.timeout)];
                    if let Some(i) = act.interval {
                        attrs.push(("interval", i));
                    }
                    if let Some(d) = act.depth {
                        attrs.push(("depth", d));
                    }
                    w.create_element("action")
                        .with_attributes(attrs)
                        .write_empty()?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn desc(w: &mut Writer<Vec<u8>>, tag: &str, text: &str) -> std::io::Result<()> {
    w.create_element(tag)
        .with_attribute(("lang", "en"))
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

fn parameter(w: &mut Writer<Vec<u8>>, p: &ParamDef) -> std::io::Result<()> {
    let mut attrs = vec![("name", p.name)];
    // OCF 1.1 (pcs 0.11, crm_resource): resources of this agent may not share a value of
    // the parameters in one group; a group of one parameter is a unique parameter.
    if p.unique {
        attrs.push(("unique-group", p.name));
    }
    // OCF 1.0 (ocf-tester's DTD, crmsh, pcs for 1.0 agents).
    attrs.push(("unique", if p.unique { "1" } else { "0" }));
    attrs.push(("required", if p.required { "1" } else { "0" }));
    // OCF 1.1: a change of this parameter alone is applied by reload-agent, not a restart.
    if p.reloadable {
        attrs.push(("reloadable", "1"));
    }
    w.create_element("parameter")
        .with_attributes(attrs)
        .write_inner_content(|w| {
            desc(w, "longdesc", &p.long_text())?;
            desc(w, "shortdesc", &p.short_text())?;
            let mut content = vec![("type", p.content.as_str())];
            if let Some(d) = p.default {
                content.push(("default", d));
            }
            w.create_element("content")
                .with_attributes(content)
                .write_empty()?;
            Ok(())
        })?;
    Ok(())
}

/// Text for roff: backslashes and hyphens escaped, no line starting with a control
/// character.
#[cfg(test)]
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The man page `ocf_rust_cloudvip(7)`, from the same `PARAMS`, `ACTIONS` and exit codes
/// as the meta-data. Checked in as `packaging/ocf_rust_cloudvip.7` and kept current by a
/// test (`UPDATE_README=1` rewrites it), so packaging needs no build step to make it.
#[cfg(test)]
pub fn man_page() -> String {
    use std::fmt::Write as _;
    let mut m = String::new();
    let _ = writeln!(
        m,
        ".\\\" Generated from the meta-data (src/ocf/metadata.rs, src/params.rs): do not edit.\n\
         .TH OCF_RUST_CLOUDVIP 7 \"\" \"cloudvip {}\" \"OCF resource agents\"\n\
         .SH NAME\nocf_rust_cloudvip \\- {}\n\
         .SH SYNOPSIS\n\
         .B pcs resource create\n\
         .I name\n\
         .B ocf:rust:cloudvip ip=\\fIaddress\\fP\n\
         [\\fIparameter\\fP=\\fIvalue\\fP ...]\n\
         .br\n\
         .B cloudvip\n\
         {{\\fBstatus\\fP|\\fBdiagnose\\fP|\\fIaction\\fP}}\n\
         [\\fB\\-\\-param\\fP \\fIname\\fP=\\fIvalue\\fP ...] [\\fB\\-\\-config\\fP \\fIfile\\fP] [\\fB\\-\\-timeout\\fP \\fIseconds\\fP]\n\
         .SH DESCRIPTION\n{}",
        env!("CARGO_PKG_VERSION"),
        roff(SHORTDESC),
        roff(LONGDESC)
    );
    let _ = writeln!(
        m,
        ".PP\nThe agent is installed as /usr/lib/ocf/resource.d/rust/cloudvip; \
         /usr/sbin/cloudvip is the same program for administrators."
    );
    m.push_str(".SH PARAMETERS\n");
    for p in crate::params::all() {
        let mut default = match (p.required, p.default) {
            (true, _) => "required".to_owned(),
            (false, Some(d)) => format!("default: {}", roff(d)),
            (false, None) => "optional".to_owned(),
        };
        if p.reloadable {
            default.push_str(", reloadable");
        }
        let _ = writeln!(
            m,
            ".TP\n\\fB{}\\fP ({}, {default})\n{}.\n{}",
            roff(p.name),
            p.content.as_str(),
            roff(&p.short_text()),
            roff(&p.long_text())
        );
    }
    m.push_str(
        ".SH ACTIONS\nPacemaker calls the agent with one of these actions (suggested timeouts):\n",
    );
    for act in ACTIONS {
        let mut extra = String::new();
        if let Some(i) = act.interval {
            let _ = write!(extra, ", interval {i}");
        }
        if let Some(d) = act.depth {
            let _ = write!(extra, ", depth {d}");
        }
        let _ = writeln!(
            m,
            ".TP\n\\fB{}\\fP\ntimeout {}{extra}",
            roff(act.name),
            act.timeout
        );
    }
    m.push_str(
        ".SH ADMINISTRATION\n\
         The same program helps administrators; Pacemaker never calls these:\n\
         .TP\n\\fBcloudvip status\\fP\n\
         who holds the VIP, on this node and in the cloud, in one table (exit 0 when this node serves it).\n\
         .TP\n\\fBcloudvip diagnose\\fP\n\
         checks in order: parameters, metadata service, credentials, permissions (probed without \
         changing anything), NIC, subnet; prints what is missing and how to fix it (exit 0 when all pass).\n\
         .TP\n\\fBcloudvip\\fP \\fIaction\\fP \\fB\\-\\-config\\fP \\fIfile\\fP\n\
         runs any action outside Pacemaker (a database failover callback, a keepalived notify \
         script). Parameters come from \\fB\\-\\-param\\fP \\fIname\\fP=\\fIvalue\\fP (repeatable) and \
         from \\fIfile\\fP (one \\fIname\\fP=\\fIvalue\\fP per line, # comments); \\fB\\-\\-param\\fP wins.\n",
    );
    m.push_str(".SH EXIT STATUS\nThe OCF actions exit with:\n");
    for st in crate::ocf::Status::ALL {
        let _ = writeln!(
            m,
            ".TP\n\\fB{}\\fP {}\n{}",
            st.code(),
            roff(st.name()),
            roff(st.meaning())
        );
    }
    m.push_str(
        ".SH EXAMPLES\n\
         .nf\n\
         pcs resource create VIP ocf:rust:cloudvip ip=10.0.0.250 cloud=gce \\e\n\
         \x20   peer_label=cluster=db1 op monitor interval=10s\n\
         cloudvip diagnose \\-\\-param ip=10.0.0.250 \\-\\-param cloud=gce\n\
         .fi\n\
         .PP\n\
         More in /usr/share/doc/cloudvip/examples (one script per setup, with the IAM roles or \
         OCI policy each needs).\n\
         .SH SEE ALSO\n\
         \\fBpcs\\fP(8), \\fBcrm_resource\\fP(8), \\fBocf\\-tester\\fP(8)\n",
    );
    m
}

/// The parameter table in Markdown, for the README (kept in sync by a test).
#[cfg(test)]
pub fn markdown_params() -> String {
    let mut s = String::from("| parameter | default | description |\n|---|---|---|\n");
    for p in crate::params::all() {
        let mut default = match (p.required, p.default) {
            (true, _) => "(required)".to_owned(),
            (false, Some(d)) => format!("`{d}`"),
            (false, None) => "see text".to_owned(),
        };
        if p.reloadable {
            default.push_str(" (reloadable)");
        }
        s.push_str(&format!(
            "| `{}` | {} | **{}.** {} |\n",
            p.name,
            default,
            p.short_text(),
            p.long_text().replace('|', "\\|")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's tables are generated; `UPDATE_README=1 cargo test readme -- --test-threads=1`
    /// rewrites them.
    fn check_readme_section(name: &str, want: &str) {
        let begin = format!("<!-- {name}: generated, see src/ocf/metadata.rs -->\n");
        let end = format!("<!-- end of {name} -->");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (head, rest) = readme
            .split_once(&begin)
            .expect("README lacks the begin marker");
        let (table, tail) = rest.split_once(&end).expect("README lacks the end marker");
        if table != want {
            if std::env::var_os("UPDATE_README").is_some() {
                std::fs::write(path, format!("{head}{begin}{want}{end}{tail}")).unwrap();
            } else {
                panic!("README {name} table is stale: run UPDATE_README=1 cargo test readme -- --test-threads=1");
            }
        }
    }

    #[test]
    fn readme_parameter_table_is_current() {
        check_readme_section("parameters", &markdown_params());
    }

    #[test]
    fn readme_exit_code_table_is_current() {
        let mut want = String::from("| code | name | meaning |\n|---|---|---|\n");
        for st in crate::ocf::Status::ALL {
            want.push_str(&format!(
                "| {} | {} | {} |\n",
                st.code(),
                st.name(),
                st.meaning()
            ));
        }
        check_readme_section("exit codes", &want);
    }

    #[test]
    fn man_page_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/ocf_rust_cloudvip.7");
        let want = man_page();
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != want {
            if std::env::var_os("UPDATE_README").is_some() {
                std::fs::write(path, &want).unwrap();
            } else {
                panic!("packaging/ocf_rust_cloudvip.7 is stale: run UPDATE_README=1 cargo test man_page");
            }
        }
        for p in crate::params::all() {
            assert!(
                want.contains(&format!("\\fB{}\\fP", roff(p.name))),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn every_parameter_has_descriptions() {
        let all = crate::params::all();
        for p in &all {
            assert!(p.shortdesc.len() > 5 && p.longdesc.len() > 40, "{}", p.name);
            assert!(
                !p.shortdesc.ends_with('.'),
                "{}: shortdesc is a title",
                p.name
            );
        }
        let names: std::collections::BTreeSet<_> = all.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), all.len(), "a parameter is defined twice");
    }
}
