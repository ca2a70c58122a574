//! The admin side of a backend, apart from what Pacemaker's actions use: who holds the VIP
//! (`cloudvip status`) and the checks of `cloudvip diagnose`, run in one order by one
//! driver (`diagnose`). Never called by Pacemaker; read-only.

use super::Nic;
use crate::deadline::Deadline;

/// How long one `cloudvip diagnose` step may wait: a metadata server answers in
/// milliseconds, so a few seconds without an answer is the finding, not a reason to wait
/// out the whole command's budget (20 s) and skip everything after it.
pub const DIAGNOSE_METADATA: std::time::Duration = std::time::Duration::from_secs(3);
/// Every other diagnose step (a token, one permission probe, one read).
pub const DIAGNOSE_STEP: std::time::Duration = std::time::Duration::from_secs(5);

/// A backend as `cloudvip status` and `cloudvip diagnose` see it.
pub trait Inspect {
    /// Who holds the VIP (and its public IP) as the cloud sees it, the VIP's own row
    /// first. May cost a few read-only API calls.
    fn holders(
        &mut self,
        nic: Option<&Nic>,
        deadline: &Deadline,
    ) -> Result<Vec<Holding>, super::CloudError>;
    /// One check of `diagnose`. The driver asks them in `Check::ALL`'s order, so a check
    /// may use what an earlier one found; `nic` is always there for `Check::Nic` and
    /// `Check::Subnet`. Read-only: a permission to change something is probed with a
    /// request the cloud refuses for its precondition (a stale fingerprint / etag) only
    /// after checking IAM, so nothing changes whatever the answer.
    fn probe(&mut self, check: Check, nic: Option<&Nic>, deadline: &Deadline) -> Verdict;
}

/// The checks of `cloudvip diagnose`, in the order every backend runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Metadata,
    Credentials,
    Permissions,
    Nic,
    Subnet,
}

impl Check {
    pub const ALL: [Check; 5] = [
        Check::Metadata,
        Check::Credentials,
        Check::Permissions,
        Check::Nic,
        Check::Subnet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Metadata => "metadata",
            Check::Credentials => "credentials",
            Check::Permissions => "permissions",
            Check::Nic => "nic",
            Check::Subnet => "subnet",
        }
    }

    /// The checks after this one need it to pass: the instance's identity, a token, our
    /// NIC. A missing permission leaves the NIC and subnet checks meaningful.
    fn needed_by_the_rest(self) -> bool {
        self != Check::Permissions
    }
}

/// The one diagnose driver: every check in order; after a failed (or skipped) check the
/// rest need, the rest is skipped. Without a local NIC, the NIC and subnet checks are.
pub fn diagnose(backend: &mut dyn Inspect, nic: Option<&Nic>, deadline: &Deadline) -> Vec<Step> {
    let mut out = Vec::new();
    let mut skipping = false;
    for check in Check::ALL {
        if check == Check::Nic && nic.is_none() {
            skipping = true;
        }
        let verdict = if skipping {
            Verdict::skipped()
        } else {
            backend.probe(check, nic, deadline)
        };
        if !matches!(verdict, Verdict::Pass(_)) && check.needed_by_the_rest() {
            skipping = true;
        }
        out.push(Step {
            name: check.name(),
            verdict,
        });
    }
    out
}

/// A permission probe's answer: a conflict (412 on a stale fingerprint or etag) means the
/// cloud's IAM let the request through to its precondition, which refused it: allowed,
/// and nothing changed.
pub fn past_iam<T>(r: Result<T, super::CloudError>) -> Result<(), super::CloudError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), super::CloudError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One row of `cloudvip status`: an object of the cloud and who has it.
pub struct Holding {
    /// e.g. "alias 10.0.0.250/32", "public 203.0.113.10"
    pub what: String,
    /// e.g. "node-a nic0 (us-central1-a)"; "- (why)" when nobody holds it.
    pub holder: String,
    pub ours: bool,
    /// Some instance holds it (this one or another).
    pub held: bool,
}

impl Holding {
    pub fn held(what: String, holder: String, ours: bool) -> Holding {
        Holding {
            what,
            holder,
            ours,
            held: true,
        }
    }
    pub fn nobody(what: String, why: &str) -> Holding {
        Holding {
            what,
            holder: format!("- ({why})"),
            ours: false,
            held: false,
        }
    }
}

/// One check of `cloudvip diagnose`.
pub struct Step {
    pub name: &'static str,
    pub verdict: Verdict,
}

pub enum Verdict {
    Pass(String),
    /// What is wrong, and how to fix it (a command or a parameter when there is one).
    Fail {
        problem: String,
        fix: String,
    },
    /// Not checked because an earlier step failed.
    Skip(String),
}

impl Verdict {
    pub fn pass(what: impl Into<String>) -> Verdict {
        Verdict::Pass(what.into())
    }
    pub fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Verdict {
        Verdict::Fail {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
    fn skipped() -> Verdict {
        Verdict::Skip("skipped: an earlier check failed".into())
    }
}

impl Step {
    pub fn pass(name: &'static str, what: impl Into<String>) -> Step {
        Step {
            name,
            verdict: Verdict::pass(what),
        }
    }
    pub fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Step {
        Step {
            name,
            verdict: Verdict::fail(problem, fix),
        }
    }
    pub fn skip(name: &'static str) -> Step {
        Step {
            name,
            verdict: Verdict::skipped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails the checks it is told to, passes the others, and counts what it was asked.
    struct Fake {
        fail: Vec<Check>,
        asked: Vec<Check>,
    }

    impl Inspect for Fake {
        fn holders(
            &mut self,
            _: Option<&Nic>,
            _: &Deadline,
        ) -> Result<Vec<Holding>, super::super::CloudError> {
            Ok(Vec::new())
        }
        fn probe(&mut self, check: Check, _: Option<&Nic>, _: &Deadline) -> Verdict {
            self.asked.push(check);
            if self.fail.contains(&check) {
                Verdict::fail("no", "fix")
            } else {
                Verdict::pass("yes")
            }
        }
    }

    fn run(fail: &[Check], nic: bool) -> (Vec<Check>, Vec<&'static str>) {
        let mut f = Fake {
            fail: fail.to_vec(),
            asked: Vec::new(),
        };
        let n = Nic {
            name: "eth0".into(),
            mac: None,
        };
        let steps = diagnose(&mut f, nic.then_some(&n), &Deadline::for_timeout(None));
        let tags = steps
            .iter()
            .map(|s| match s.verdict {
                Verdict::Pass(_) => "ok",
                Verdict::Fail { .. } => "FAIL",
                Verdict::Skip(_) => "skip",
            })
            .collect();
        (f.asked, tags)
    }

    #[test]
    fn the_driver_skips_what_a_failed_check_makes_meaningless() {
        let (asked, tags) = run(&[], true);
        assert_eq!((asked.len(), tags), (5, vec!["ok"; 5]));
        let (asked, tags) = run(&[Check::Credentials], true);
        assert_eq!(asked, [Check::Metadata, Check::Credentials]);
        assert_eq!(tags, ["ok", "FAIL", "skip", "skip", "skip"]);
        // A missing permission leaves the NIC and subnet checks meaningful.
        let (_, tags) = run(&[Check::Permissions], true);
        assert_eq!(tags, ["ok", "ok", "FAIL", "ok", "ok"]);
        let (_, tags) = run(&[Check::Nic], true);
        assert_eq!(tags, ["ok", "ok", "ok", "FAIL", "skip"]);
        // No local NIC: its checks are skipped, never asked.
        let (asked, tags) = run(&[], false);
        assert_eq!(asked.len(), 3);
        assert_eq!(tags, ["ok", "ok", "ok", "skip", "skip"]);
    }
}
