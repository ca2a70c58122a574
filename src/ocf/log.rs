//! `ocf_log` for a compiled agent: a `log::Log` that writes where resource-agents'
//! `ocf-shellfuncs` writes, with the same tag `cloudvip(<instance>)[<pid>]` and the same
//! `ERROR:`/`WARNING:`/`INFO:`/`DEBUG:` prefixes, so admins grep one format for all agents.
//!
//! Sinks: syslog when `HA_LOGFACILITY` is set (never the UDP fallback: `syslog::unix` only),
//! appended to `HA_LOGFILE` and `HA_DEBUGLOG`, and stderr when neither syslog nor a log file
//! is configured or stderr is a terminal. Debug records only with `HA_debug` set and not "0".

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
        OcfLogger {
            tag: format!("{process}[{pid}]"),
            syslog,
            logfile: env.logfile.clone(),
            debuglog: env.debuglog.clone(),
            stderr,
        }
    }

    /// Install as the global logger. Safe to call once; a second call is ignored.
    pub fn install(self, debug: bool) {
        if log::set_boxed_logger(Box::new(self)).is_ok() {
            log::set_max_level(if debug {
                LevelFilter::Debug
            } else {
                LevelFilter::Info
            });
        }
    }
}

impl Log for OcfLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
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

/// `ocf_exit_reason`: one line on stderr with the prefix Pacemaker parses (it keeps the last
/// one), then the same text logged as an error.
pub fn exit_reason(prefix: &str, msg: &str) {
    let line = msg.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "{prefix}{line}");
    log::error!(target: EXIT_REASON_TARGET, "{line}");
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

    #[test]
    fn date_has_hadate_shape() {
        let d = local_date();
        // "Nov 22 07:50:01"
        assert_eq!(d.len(), 15, "{d:?}");
        assert_eq!(&d[9..10], ":");
    }
}
