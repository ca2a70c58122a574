//! `ocf_log` for a compiled agent: a `log::Log` that writes where resource-agents'
//! `ocf-shellfuncs` writes, with the same tag `cloudvip(<instance>)[<pid>]` and the same
//! `ERROR:`/`WARNING:`/`INFO:`/`DEBUG:` prefixes, so admins grep one format for all agents.
//!
//! Sinks: syslog when `HA_LOGFACILITY` is set (never the UDP fallback: `syslog::unix` only),
//! appended to `HA_LOGFILE` and `HA_DEBUGLOG`, and stderr when neither syslog nor a log file
//! is configured or stderr is a terminal.
//!
//! Levels by log target: the agent's own records (target `cloudvip…`) at INFO, and at
//! DEBUG with `HA_debug` set and not "0" (what `pcs resource debug-start --full` and
//! `crm_resource -V` set): each step, each HTTP request with its method, redacted URL,
//! status and time. The libraries' records (ureq's connection pool and call states,
//! rustls' handshake) only from WARNING up; their DEBUG records when asked for with
//! `HA_debug=2` or `CLOUDVIP_DEBUG_LIBS=1` (on a Pacemaker node, where pacemakerd sets
//! HA_debug itself: in /etc/default/pacemaker or /etc/sysconfig/pacemaker); never their
//! TRACE records, which dump whole requests, tokens included.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::env::LogEnv;

/// Records with this target go to the logs but not to stderr: `exit_reason` has already
/// printed them there with the exit-reason prefix (as `ocf_exit_reason` does).
pub const EXIT_REASON_TARGET: &str = "ocf-exit-reason";

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

pub struct OcfLogger {
    tag: String,
    /// The most verbose level for our own records and for the libraries'.
    own: LevelFilter,
    libs: LevelFilter,
    syslog: Option<Mutex<Syslog>>,
    logfile: Option<String>,
    debuglog: Option<String>,
    stderr: bool,
}

impl OcfLogger {
    pub fn new(env: &LogEnv, instance: Option<&str>) -> Self {
        let process = match instance {
            Some(i) => format!("cloudvip({i})"),
            None => "cloudvip".to_owned(),
        };
        let pid = std::process::id();
        let syslog = env.facility.as_deref().and_then(|f| {
            let facility = f.parse().unwrap_or(syslog::Facility::LOG_DAEMON);
            syslog::unix(syslog::Formatter3164 {
                facility,
                hostname: None,
                process: process.clone(),
                pid,
            })
            .ok()
            .map(Mutex::new)
        });
        // ocf-shellfuncs writes to stderr only when nothing else would see the message, or
        // when a human is watching.
        let stderr = (syslog.is_none() && env.logfile.is_none()) || stderr_is_tty();
        let (own, libs) = levels(
            env.debug,
            std::env::var_os("HA_debug").as_deref(),
            std::env::var_os("CLOUDVIP_DEBUG_LIBS").as_deref(),
        );
        OcfLogger {
            tag: format!("{process}[{pid}]"),
            own,
            libs,
            syslog,
            logfile: env.logfile.clone(),
            debuglog: env.debuglog.clone(),
            stderr,
        }
    }

    /// Install as the global logger. Safe to call once; a second call is ignored. `debug`
    /// is `HA_debug` as parsed by `LogEnv` (the levels were chosen in `new`; kept for the
    /// callers' sake).
    pub fn install(self, debug: bool) {
        let _ = debug;
        let max = self.own.max(self.libs);
        if log::set_boxed_logger(Box::new(self)).is_ok() {
            log::set_max_level(max);
        }
    }
}

/// Our level and the libraries': `HA_debug` non-empty and not "0" turns on our DEBUG
/// records; "2" (or CLOUDVIP_DEBUG_LIBS=1) the libraries' DEBUG records too. Never their
/// TRACE records: ureq hex-dumps whole requests and responses there, tokens included.
fn levels(
    debug: bool,
    ha_debug: Option<&std::ffi::OsStr>,
    debug_libs: Option<&std::ffi::OsStr>,
) -> (LevelFilter, LevelFilter) {
    let libs_asked =
        ha_debug.is_some_and(|v| v == "2") || debug_libs.is_some_and(|v| !v.is_empty() && v != "0");
    match (debug, libs_asked) {
        (false, false) => (LevelFilter::Info, LevelFilter::Warn),
        (true, false) => (LevelFilter::Debug, LevelFilter::Warn),
        (_, true) => (LevelFilter::Debug, LevelFilter::Debug),
    }
}

/// Whether a record's target is the agent's own: its modules (`cloudvip::…`) and the
/// exit-reason records.
fn is_own(target: &str) -> bool {
    target == EXIT_REASON_TARGET
        || target
            .strip_prefix("cloudvip")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

impl Log for OcfLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        let max = if is_own(m.target()) {
            self.own
        } else {
            self.libs
        };
        m.level() <= max
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let prio = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARNING",
            Level::Info => "INFO",
            Level::Debug | Level::Trace => "DEBUG",
        };
        let msg = format!("{prio}: {}", r.args());
        if let Some(s) = &self.syslog {
            if let Ok(mut s) = s.lock() {
                let _ = match r.level() {
                    Level::Error => s.err(&msg),
                    Level::Warn => s.warning(&msg),
                    Level::Info => s.info(&msg),
                    Level::Debug | Level::Trace => s.debug(&msg),
                };
            }
        }
        let date = local_date();
        if r.level() <= Level::Info {
            if let Some(f) = &self.logfile {
                append(f, &format!("{date} {}:    {msg}\n", self.tag));
            }
        }
        if let Some(f) = &self.debuglog {
            if Some(f) != self.logfile.as_ref() || r.level() > Level::Info {
                append(f, &format!("{}:\t{date} {msg}\n", self.tag));
            }
        }
        if self.stderr && r.target() != EXIT_REASON_TARGET {
            let _ = writeln!(std::io::stderr(), "{}: {msg}", self.tag);
        }
    }

    fn flush(&self) {}
}

/// Pacemaker keeps this many bytes of an exit reason (`EXIT_REASON_MAX_LEN` in
/// lib/services/services_linux.c, a byte count: `strndup(reason_start, 128)`); the rest
/// never reaches the CIB or `pcs status`.
pub const REASON_MAX: usize = 128;

/// `ocf_exit_reason`: one line on stderr with the prefix Pacemaker parses (it keeps the last
/// one), then the text logged as an error. A reason longer than Pacemaker keeps is
/// shortened by [`short_reason`] for the exit-reason line, and the whole text is logged
/// (and shown on stderr when the logger writes there), so no detail is lost.
pub fn exit_reason(prefix: &str, msg: &str) {
    let full = one_line(msg);
    let short = short_reason(&full);
    let _ = writeln!(std::io::stderr(), "{prefix}{short}");
    if short == full {
        log::error!(target: EXIT_REASON_TARGET, "{full}");
    } else {
        log::error!(target: EXIT_REASON_TARGET, "{short}");
        log::error!("details: {full}");
    }
}

/// A reason that fits Pacemaker's limit, cause first. Reasons are `anyhow` chains written
/// outermost first ("permission denied by the cloud: PATCH …/updateNetworkInterface: HTTP
/// 403 forbidden: Required 'compute.instances.updateNetworkInterface' permission for …"):
/// the first clause says what kind of failure it is, the last one is the root cause, and
/// the clauses between locate it; the short ones are labels worth keeping ("metadata
/// server", "HTTP 404 NotAuthorizedOrNotFound"), the long ones request lines and paths,
/// which is what the log is for. The rule:
/// 1. a reason within the limit is kept whole;
/// 2. else the first clause, the cause and as many of the clauses between as fit,
///    shortest first, in their order;
/// 3. if the first clause and the cause alone are too long, the first clause and the
///    short labels between (at most half the limit together; the first clause is dropped
///    when it alone is longer) and the cause shortened to the rest: its long words (ids,
///    paths) become "…", longest first, and as a last resort the text is cut at a word
///    boundary with "…", inside a word only when one word is too long.
pub fn short_reason(reason: &str) -> String {
    let reason = one_line(reason);
    if reason.len() <= REASON_MAX {
        return reason;
    }
    let clauses: Vec<&str> = reason
        .split(": ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let (Some(&first), Some(&cause)) = (clauses.first(), clauses.last()) else {
        return cut(&reason, REASON_MAX);
    };
    if clauses.len() == 1 {
        return shrink(cause, REASON_MAX);
    }
    let middle = &clauses[1..clauses.len() - 1];
    // Step 2, or step 3 when the cause must shrink: `budget` is what the head may take.
    let (head, budget) = if first.len() + 2 + cause.len() <= REASON_MAX {
        (vec![first], REASON_MAX - cause.len())
    } else if first.len() + 2 <= REASON_MAX / 2 {
        (vec![first], REASON_MAX / 2)
    } else {
        (Vec::new(), REASON_MAX / 2)
    };
    let used = |v: &[&str]| v.iter().map(|c| c.len() + 2).sum::<usize>();
    let mut order: Vec<usize> = (0..middle.len()).collect();
    order.sort_by_key(|&i| middle[i].len());
    let mut chosen = vec![false; middle.len()];
    let mut total = used(&head);
    for i in order {
        if total + middle[i].len() + 2 <= budget {
            chosen[i] = true;
            total += middle[i].len() + 2;
        }
    }
    let mut picked = head;
    picked.extend(
        middle
            .iter()
            .zip(&chosen)
            .filter_map(|(c, &k)| k.then_some(*c)),
    );
    let cause = shrink(cause, REASON_MAX - total);
    picked.push(&cause);
    picked.join(": ")
}

const ELLIPSIS: &str = "\u{2026}";

/// `s` in at most `max` bytes: long words (operation ids, resource paths: the log has
/// them) become "…", longest first, until it fits; then [`cut`] if it still does not.
fn shrink(s: &str, max: usize) -> String {
    const LONG_WORD: usize = 16;
    let mut words: Vec<&str> = s.split(' ').collect();
    let total = |w: &[&str]| w.iter().map(|x| x.len()).sum::<usize>() + w.len().saturating_sub(1);
    // A single word is the whole message: cut it rather than lose it.
    while total(&words) > max && words.len() > 1 {
        let longest = words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.len() > LONG_WORD)
            .max_by_key(|(_, w)| w.len())
            .map(|(i, _)| i);
        match longest {
            Some(i) => words[i] = ELLIPSIS,
            None => break,
        }
    }
    cut(&words.join(" "), max)
}

/// `s` in at most `max` bytes: whole, or up to a word boundary followed by "…".
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let room = max.saturating_sub(ELLIPSIS.len());
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let head = &s[..end];
    // A word boundary, unless that would throw away most of the room.
    let mut head = match head.rfind(' ') {
        Some(i) if i >= room / 2 => &head[..i],
        _ => head,
    };
    // "… permission for…" reads worse than "… permission…".
    const DANGLING: &[&str] = &[
        "a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with",
    ];
    while let Some((rest, last)) = head.rsplit_once(' ') {
        if !DANGLING.contains(&last) || rest.len() < room / 2 {
            break;
        }
        head = rest;
    }
    let head = head.trim_end_matches([' ', ',', ';', ':', '(']);
    format!("{head}{ELLIPSIS}")
}

/// Pacemaker keeps a reason up to the first newline: fold every control character.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn append(path: &str, line: &str) {
    // A log file we cannot write must never change the outcome of an action.
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

/// `date "+%b %d %T"` in local time (HA_DATEFMT's default), without a time-zone crate.
fn local_date() -> String {
    let mut buf = [0u8; 64];
    // SAFETY: time/localtime_r/strftime write only into the locals passed to them; strftime
    // returns the number of bytes written (0 on overflow), which bounds the slice.
    let n = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %d %T".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reasons the agent really produced (GCE emulator, `readonly@` service account and a
    // missing address), and made-up worst cases.
    const GCE_403: &str = "permission denied by the cloud: PATCH projects/my-project/zones/\
        us-central1-a/instances/node-a/updateNetworkInterface: HTTP 403 forbidden: Required \
        'compute.instances.updateNetworkInterface' permission for 'projects/my-project/zones/\
        us-central1-a/instances/node-a'";
    const GCE_404: &str = "not found in the cloud: GET projects/my-project/regions/us-central1/\
        addresses/nonexistent-address-name: HTTP 404 notFound: The resource 'projects/\
        my-project/regions/us-central1/addresses/nonexistent-address-name' was not found";

    #[test]
    fn an_operation_id_gives_way_to_the_words() {
        let r = "transient cloud error: updateNetworkInterface operation \
                 operation-1796168968010-be2b35af662b2-6a99fb3d-7089e9ab not DONE before the \
                 deadline";
        assert_eq!(
            short_reason(r),
            "transient cloud error: updateNetworkInterface operation \u{2026} not DONE before \
             the deadline"
        );
    }

    #[test]
    fn the_last_resort_cuts_at_a_word_boundary() {
        let r = format!("kind: {}", "word ".repeat(40));
        let s = short_reason(&r);
        assert!(s.len() <= REASON_MAX, "{s}");
        assert!(
            s.starts_with("kind: word word") && s.ends_with("word\u{2026}"),
            "{s}"
        );
    }

    #[test]
    fn a_short_reason_is_kept_whole() {
        let r = "invalid ip=\"10.0.0.300\": not an IPv4 or IPv6 address";
        assert_eq!(short_reason(r), r);
        let exact = "x".repeat(REASON_MAX);
        assert_eq!(short_reason(&exact), exact);
    }

    #[test]
    fn a_gce_403_keeps_the_permission_name() {
        let s = short_reason(GCE_403);
        assert!(s.len() <= REASON_MAX, "{} bytes: {s}", s.len());
        assert_eq!(
            s,
            "permission denied by the cloud: HTTP 403 forbidden: Required \
             'compute.instances.updateNetworkInterface' permission for \u{2026}"
        );
        // The old way: Pacemaker's cut of the whole chain lost the permission.
        assert!(!GCE_403[..REASON_MAX].contains("compute.instances.updateNetworkInterface"));
    }

    #[test]
    fn an_oci_error_code_stays() {
        let r = "not found in the cloud: PUT privateIps/ocid1.privateip.oc1.iad.aaaaaaaavip: \
                 HTTP 404 NotAuthorizedOrNotFound: Either Private IP with ID \
                 ocid1.privateip.oc1.iad.aaaaaaaavip does not exist or you are not authorized \
                 to access it.";
        let s = short_reason(r);
        assert!(s.len() <= REASON_MAX, "{s}");
        assert!(
            s.starts_with(
                "not found in the cloud: HTTP 404 NotAuthorizedOrNotFound: Either Private IP \
                 with ID \u{2026} does not exist"
            ),
            "{s}"
        );
    }

    #[test]
    fn a_gce_404_names_the_missing_resource_without_the_request() {
        let s = short_reason(GCE_404);
        assert_eq!(
            s,
            "not found in the cloud: The resource 'projects/my-project/regions/us-central1/\
             addresses/nonexistent-address-name' was not found"
        );
    }

    #[test]
    fn short_middle_clauses_are_kept_when_they_fit() {
        let r = "transient cloud error: metadata server: GET \
                 http://169.254.169.254/computeMetadata/v1/: io: Connection reset by peer \
                 (os error 104)";
        assert!(r.len() > REASON_MAX);
        assert_eq!(
            short_reason(r),
            "transient cloud error: metadata server: io: Connection reset by peer (os error 104)"
        );
        let r = format!(
            "start failed: {}: Compute API: connection refused",
            "while reading the instance ".repeat(5)
        );
        assert!(r.len() > REASON_MAX);
        assert_eq!(
            short_reason(&r),
            "start failed: Compute API: connection refused"
        );
    }

    #[test]
    fn a_long_single_word_is_cut_inside_and_utf8_stays_whole() {
        let s = short_reason(&"é".repeat(200));
        assert!(s.len() <= REASON_MAX && s.ends_with('\u{2026}'), "{s}");
        let s = short_reason(&format!("a: {}", "ü".repeat(100)));
        assert!(s.len() <= REASON_MAX, "{} bytes", s.len());
        assert!(s.starts_with("a: üü"), "{s}");
        let long_first = format!("{}: the cause", "context ".repeat(20));
        let s = short_reason(&long_first);
        assert!(s.len() <= REASON_MAX, "{s}");
        assert!(s.ends_with("the cause"), "the cause survives: {s}");
    }

    #[test]
    fn control_characters_never_reach_the_reason() {
        assert_eq!(short_reason("a\nb\r\tc"), "a b  c");
    }

    #[test]
    fn library_records_need_to_be_asked_for() {
        use std::ffi::OsStr;
        let one = Some(OsStr::new("1"));
        let two = Some(OsStr::new("2"));
        assert_eq!(
            levels(false, None, None),
            (LevelFilter::Info, LevelFilter::Warn)
        );
        assert_eq!(
            levels(true, one, None),
            (LevelFilter::Debug, LevelFilter::Warn)
        );
        assert_eq!(
            levels(true, two, None),
            (LevelFilter::Debug, LevelFilter::Debug)
        );
        assert_eq!(
            levels(true, one, Some(OsStr::new("1"))),
            (LevelFilter::Debug, LevelFilter::Debug)
        );
        assert_eq!(
            levels(true, one, Some(OsStr::new("0"))).1,
            LevelFilter::Warn
        );
        assert!(is_own("cloudvip") && is_own("cloudvip::http") && is_own(EXIT_REASON_TARGET));
        assert!(!is_own("ureq::pool") && !is_own("rustls::client") && !is_own("cloudvip_sim"));
    }

    #[test]
    fn date_has_hadate_shape() {
        let d = local_date();
        // "Nov 22 07:50:01"
        assert_eq!(d.len(), 15, "{d:?}");
        assert_eq!(&d[9..10], ":");
    }
}
