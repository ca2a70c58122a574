//! The environment Pacemaker (or ocf-tester, crm_resource, an admin) gives an agent:
//! `OCF_RESKEY_*` parameters, `OCF_RESKEY_CRM_meta_*` operation attributes, logging
//! variables. Built from any key/value iterator so that tests need no process.
//!
//! The environment is read as bytes (`vars_os`): `std::env::vars` panics on the first
//! variable that is not UTF-8, which would abort every action, stop included. A variable
//! we do not use is ignored whatever its bytes; a parameter that is not UTF-8 is kept
//! aside in `unreadable`, for `Params::parse` to refuse (and stop to skip).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct OcfEnv {
    /// `OCF_RESOURCE_INSTANCE`, e.g. `VIP` or `VIP:0` for clones.
    pub instance: Option<String>,
    /// Instance parameters: `OCF_RESKEY_<name>` without the `CRM_meta_` ones.
    pub params: BTreeMap<String, String>,
    /// `OCF_RESKEY_CRM_meta_<name>`: timeout, interval, migrate_target, ...
    pub meta: BTreeMap<String, String>,
    /// `OCF_CHECK_LEVEL` (monitor and validate-all depth); 0 when absent.
    pub check_level: u32,
    pub exit_reason_prefix: String,
    pub log: LogEnv,
    /// `HA_RSCTMP`: the per-boot state directory (`state::dir` falls back to
    /// /run/resource-agents, as Pacemaker passes none).
    pub rsctmp: Option<String>,
    /// Parameters whose name or value is not UTF-8, by name (lossily decoded) with the
    /// value as far as it can be shown.
    pub unreadable: BTreeMap<String, String>,
    /// Variables we would have used but could not read (not UTF-8), for a warning once
    /// logging is set up.
    pub ignored: Vec<String>,
}

/// The logging variables `ocf_log` reads (resource-agents `ocf-shellfuncs`).
#[derive(Clone, Debug, Default)]
pub struct LogEnv {
    pub facility: Option<String>,
    pub logfile: Option<String>,
    pub debuglog: Option<String>,
    pub debug: bool,
}

impl OcfEnv {
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars_os())
    }

    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut env = OcfEnv {
            exit_reason_prefix: "ocf-exit-reason:".into(),
            ..Default::default()
        };
        let mut check_level_param = None;
        for (k, v) in vars {
            let (k, v) = (k.as_ref(), v.as_ref());
            let (k, v) = match (k.to_str(), v.to_str()) {
                (Some(k), Some(v)) => (k, v.to_owned()),
                _ => {
                    env.unreadable_var(k, v);
                    continue;
                }
            };
            if let Some(name) = k.strip_prefix("OCF_RESKEY_CRM_meta_") {
                env.meta.insert(name.to_owned(), v);
            } else if k == "OCF_RESKEY_OCF_CHECK_LEVEL" {
                check_level_param = Some(v);
            } else if let Some(name) = k.strip_prefix("OCF_RESKEY_") {
                env.params.insert(name.to_owned(), v);
            } else {
                match k {
                    "OCF_RESOURCE_INSTANCE" if !v.is_empty() => env.instance = Some(v),
                    "OCF_CHECK_LEVEL" => env.check_level = v.trim().parse().unwrap_or(0),
                    "OCF_EXIT_REASON_PREFIX" if !v.is_empty() => env.exit_reason_prefix = v,
                    // pacemakerd exports "none" when syslog is switched off.
                    "HA_LOGFACILITY" if !v.is_empty() && v != "none" => env.log.facility = Some(v),
                    "HA_LOGFILE" if !v.is_empty() => env.log.logfile = Some(v),
                    "HA_DEBUGLOG" if !v.is_empty() => env.log.debuglog = Some(v),
                    // ocf-shellfuncs: debug is off when HA_debug is empty or "0".
                    "HA_debug" => env.log.debug = !v.is_empty() && v != "0",
                    "HA_RSCTMP" if !v.is_empty() => env.rsctmp = Some(v),
                    _ => {}
                }
            }
        }
        // ocf-shellfuncs reads OCF_RESKEY_OCF_CHECK_LEVEL when OCF_CHECK_LEVEL is unset.
        if env.check_level == 0 {
            if let Some(v) = check_level_param {
                env.check_level = v.trim().parse().unwrap_or(0);
            }
        }
        env
    }

    /// A variable whose name or value is not UTF-8: a parameter is remembered (it may be
    /// one we need), a variable we read is noted, anything else is none of our business.
    fn unreadable_var(&mut self, k: &OsStr, v: &OsStr) {
        let key = k.to_string_lossy();
        if let Some(name) = key.strip_prefix("OCF_RESKEY_") {
            if !name.starts_with("CRM_meta_") && name != "OCF_CHECK_LEVEL" {
                self.unreadable
                    .insert(name.to_owned(), v.to_string_lossy().into_owned());
                return;
            }
        }
        if key.starts_with("OCF_") || key.starts_with("HA_") {
            self.ignored.push(key.into_owned());
        }
    }

    /// The operation timeout Pacemaker will enforce (`CRM_meta_timeout`, milliseconds).
    pub fn timeout(&self) -> Option<Duration> {
        self.meta
            .get("timeout")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// The state directory for caches, locks and pid files: `HA_RSCTMP`, else
    /// /run/resource-agents (created when missing). `None` when it cannot be made.
    pub fn state_dir(&self) -> Option<std::path::PathBuf> {
        crate::state::dir(self.rsctmp.as_deref())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_params_meta_and_logging() {
        let env = OcfEnv::from_vars([
            ("OCF_RESKEY_ip", "10.0.0.5"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESOURCE_INSTANCE", "VIP"),
            ("HA_LOGFACILITY", "none"),
            ("HA_debug", "0"),
            ("OCF_EXIT_REASON_PREFIX", "why:"),
        ]);
        assert_eq!(env.param("ip"), Some("10.0.0.5"));
        assert!(!env.params.contains_key("CRM_meta_timeout"));
        assert_eq!(env.timeout(), Some(Duration::from_secs(20)));
        assert_eq!(env.instance.as_deref(), Some("VIP"));
        assert_eq!(env.log.facility, None);
        assert!(!env.log.debug);
        assert_eq!(env.exit_reason_prefix, "why:");
    }

    #[test]
    fn defaults_check_level_and_prefix() {
        let env = OcfEnv::from_vars([("OCF_RESKEY_OCF_CHECK_LEVEL", "10"), ("HA_debug", "1")]);
        assert_eq!(env.timeout(), None);
        assert_eq!(env.check_level, 10);
        assert!(env.log.debug);
        assert_eq!(env.exit_reason_prefix, "ocf-exit-reason:");
    }

    #[test]
    fn non_utf8_is_kept_aside_never_a_panic() {
        use std::os::unix::ffi::OsStrExt as _;
        let bad = OsStr::from_bytes(b"eth\xff0");
        let env = OcfEnv::from_vars([
            (OsStr::new("OCF_RESKEY_ip"), OsStr::new("10.0.0.5")),
            (OsStr::new("OCF_RESKEY_nic"), bad),
            (OsStr::new("JUNK"), bad),
            (bad, OsStr::new("x")),
            (OsStr::new("HA_LOGFILE"), bad),
            (OsStr::new("OCF_RESKEY_CRM_meta_timeout"), bad),
        ]);
        assert_eq!(env.param("ip"), Some("10.0.0.5"));
        assert_eq!(env.param("nic"), None);
        assert_eq!(env.unreadable["nic"], "eth\u{fffd}0");
        assert_eq!(env.unreadable.len(), 1);
        assert_eq!(env.log.logfile, None);
        assert_eq!(env.ignored, ["HA_LOGFILE", "OCF_RESKEY_CRM_meta_timeout"]);
        assert_eq!(env.timeout(), None);
    }
}
