//! The one writer of a NIC's alias list on this node. A PATCH replaces the whole list and
//! GCE queues a second mutation behind one in flight (or refuses it, see the emulator's
//! `operations.busy`), so two actions that read, modify and write one NIC at the same time
//! lose each other's change. Here every action on this node that wants to change a NIC's
//! list (a start adding its VIP, a stop removing it, a start removing its VIP from a peer)
//! writes what it wants into an intent file and waits; whoever holds the NIC's lock
//! collects every intent, writes one list that satisfies them all, waits for the operation,
//! and answers each intent. So 32 parallel starts on one NIC cost a few operations, not 32
//! that overwrite each other.
//!
//! Crash safety: the lock is a `flock` (the kernel drops it when its holder dies), and each
//! intent file is `flock`ed by its owner for as long as it waits, so a collector tells a
//! SIGKILLed owner's leftover (lock free: deleted, ignored) from a live one (lock held).
//! A holder killed mid-write leaves its operation in the cloud; the next holder waits for
//! it to finish before reading, and nothing is answered before it was verified.
//!
//! Verification: a read counts only when it is settled (`Api::settled`: read, nothing in
//! flight, read again unchanged), i.e. every change accepted before it has landed in it.
//! After our operation is DONE we read again that way and write again if another node's
//! change undid ours (the cross-node case, which no lock here can cover): see
//! `settle_list`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::aliases::{merged, satisfied, Want};
use super::compute::{aliases_of, field, nics, Api};
use super::transient;
use crate::cloud::CloudError;
use crate::deadline::{Backoff, Deadline};

/// The NIC whose alias list is written.
pub struct Target<'a> {
    pub zone: &'a str,
    pub instance: &'a str,
    /// The API's name for it, `nicN`.
    pub nic: &'a str,
    /// Our own instance: its 404 is this node's problem. A peer that is gone holds nothing.
    pub own: bool,
}

impl Target<'_> {
    fn show(&self) -> String {
        format!("{} {}", self.instance, self.nic)
    }
}

/// One action's wish, as written to its intent file.
#[derive(Serialize, Deserialize)]
struct Intent {
    want: Want,
    /// Write this one by itself: a batch it was in was refused as invalid, and which entry
    /// was at fault is unknown.
    alone: bool,
}

/// The holder's answer to an intent.
#[derive(Serialize, Deserialize)]
enum Outcome {
    /// Verified in the cloud after every operation on the instance was DONE.
    Done,
    /// Try again by yourself (see `Intent::alone`).
    Alone,
    Failed {
        kind: Kind,
        msg: String,
    },
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum Kind {
    Transient,
    Conflict,
    Denied,
    NotFound,
    Invalid,
    Local,
}

fn to_outcome(e: &CloudError) -> Outcome {
    // The cloud's code stays in this process: the writer's callers match on the kind.
    let (kind, msg) = match e.kind() {
        CloudError::Transient(m) => (Kind::Transient, m),
        CloudError::Conflict(m) => (Kind::Conflict, m),
        CloudError::Denied(m) => (Kind::Denied, m),
        CloudError::NotFound(m) => (Kind::NotFound, m),
        CloudError::Invalid(m) => (Kind::Invalid, m),
        CloudError::Local(m) | CloudError::Coded { error: _, code: m } => (Kind::Local, m),
    };
    Outcome::Failed {
        kind,
        msg: msg.clone(),
    }
}

fn from_failed(kind: Kind, msg: String) -> CloudError {
    match kind {
        Kind::Transient => CloudError::Transient(msg),
        Kind::Conflict => CloudError::Conflict(msg),
        Kind::Denied => CloudError::Denied(msg),
        Kind::NotFound => CloudError::NotFound(msg),
        Kind::Invalid => CloudError::Invalid(msg),
        Kind::Local => CloudError::Local(msg),
    }
}

/// How long a waiter sleeps between looking for its answer and trying the lock.
const POLL: Duration = Duration::from_millis(20);
/// A temporary intent file (or an answer without its intent) older than this belongs to
/// a dead or departed writer.
const STALE_TMP: Duration = Duration::from_secs(60);

/// Make the NIC's list satisfy `want`, together with whatever else this node's actions want
/// of it at the moment. `state` is the per-NIC path prefix in the state directory, `None`
/// when there is no state directory (then this action writes alone, unbatched).
/// `accepted` is called when this action's own write was accepted (its operation not yet
/// DONE), so the caller can start work on another instance beside it; it is not called
/// when another action of this node wrote for us, and may be called again for a rewrite.
pub fn apply(
    api: &Api,
    state: Option<&Path>,
    t: &Target,
    want: Want,
    accepted: &mut dyn FnMut(),
    deadline: &Deadline,
) -> Result<(), CloudError> {
    let Some(prefix) = state else {
        return write_alone(api, t, want, accepted, deadline);
    };
    let dir = prefix.with_extension("d");
    let lock_path = prefix.with_extension("lock");
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        log::warn!(
            "cannot create {}: {e}; writing {} without batching",
            dir.display(),
            t.show()
        );
        return write_alone(api, t, want, accepted, deadline);
    }
    let mut mine = Mine::register(&dir, &Intent { want, alone: false })
        .map_err(|e| transient(format!("intent file in {}: {e}", dir.display())))?;
    loop {
        match mine.outcome() {
            Some(Outcome::Done) => return Ok(()),
            Some(Outcome::Failed { kind, msg }) => return Err(from_failed(kind, msg)),
            Some(Outcome::Alone) => {
                let want = mine.intent.want.clone();
                mine = Mine::register(&dir, &Intent { want, alone: true })
                    .map_err(|e| transient(format!("intent file in {}: {e}", dir.display())))?;
                continue;
            }
            None => {}
        }
        if deadline.remaining() < POLL * 2 {
            return Err(transient(format!(
                "another action of this node was still writing the aliases of {} at the deadline",
                t.show()
            )));
        }
        let slice = deadline.within(POLL);
        match crate::state::lock(&lock_path, &slice) {
            Ok(_held) => return hold(api, &dir, &mine, t, accepted, deadline),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => {
                log::warn!(
                    "cannot lock {}: {e}; writing {} without batching",
                    lock_path.display(),
                    t.show()
                );
                let want = mine.intent.want.clone();
                drop(mine);
                return write_alone(api, t, want, accepted, deadline);
            }
        }
    }
}

fn write_alone(
    api: &Api,
    t: &Target,
    want: Want,
    accepted: &mut dyn FnMut(),
    deadline: &Deadline,
) -> Result<(), CloudError> {
    own_result(settle_list(
        api,
        t,
        None,
        &mut vec![Entry::own(want)],
        None,
        accepted,
        deadline,
    ))
}

/// The holder's own result from a batch's: settled, unless its own address was in use.
fn own_result(r: Result<Option<String>, CloudError>) -> Result<(), CloudError> {
    match r? {
        None => Ok(()),
        Some(m) => Err(CloudError::Conflict(m)),
    }
}

/// This action's intent file, locked for as long as it lives; removed on drop.
struct Mine {
    file: File,
    dir: PathBuf,
    id: String,
    intent: Intent,
}

impl Mine {
    fn register(dir: &Path, intent: &Intent) -> std::io::Result<Mine> {
        let body = serde_json::to_vec(intent).map_err(std::io::Error::other)?;
        for _ in 0..8 {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let mut r = [0u8; 4];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
            // Fixed width, so names sort by time: the later of two intents for one address wins.
            let id = format!(
                "{nanos:032x}-{}-{:08x}",
                std::process::id(),
                u32::from_le_bytes(r)
            );
            let tmp = dir.join(format!(".{id}.tmp"));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.lock()?;
            file.write_all(&body)?;
            match fs::rename(&tmp, dir.join(format!("{id}.want"))) {
                Ok(()) => {
                    return Ok(Mine {
                        file,
                        dir: dir.to_owned(),
                        id,
                        intent: Intent {
                            want: intent.want.clone(),
                            alone: intent.alone,
                        },
                    })
                }
                // A collector took the temporary file for a dead writer's: try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        Err(std::io::Error::other("cannot register an intent"))
    }

    fn outcome(&self) -> Option<Outcome> {
        let text = fs::read(self.dir.join(format!("{}.done", self.id))).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join(format!("{}.want", self.id)));
        let _ = fs::remove_file(self.dir.join(format!("{}.done", self.id)));
        let _ = self.file.unlock();
    }
}

/// One want in a batch and whose it is (`None`: the holder's own).
struct Entry {
    id: Option<String>,
    want: Want,
}

impl Entry {
    fn own(want: Want) -> Entry {
        Entry { id: None, want }
    }
}

fn answer(dir: &Path, id: &str, o: &Outcome) {
    let Ok(body) = serde_json::to_vec(o) else {
        return;
    };
    let tmp = dir.join(format!(".{id}.done.tmp"));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&body))
        .and_then(|()| fs::rename(&tmp, dir.join(format!("{id}.done"))));
    if let Err(e) = written {
        log::warn!("cannot answer intent {id} in {}: {e}", dir.display());
    }
}

/// The live, unanswered intents of other actions (dead ones are cleared on the way).
fn collect(dir: &Path, own: &str) -> Vec<(String, Intent)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(tmp) = name.strip_prefix('.') {
            // a writer killed between creating and publishing its intent
            if tmp.ends_with(".tmp") && older_than(&e, STALE_TMP) {
                let _ = fs::remove_file(e.path());
            }
            continue;
        }
        if let Some(id) = name.strip_suffix(".done") {
            // An answer nobody came for (its owner gave up first): old ones go.
            if !dir.join(format!("{id}.want")).exists() && older_than(&e, STALE_TMP) {
                let _ = fs::remove_file(e.path());
            }
            continue;
        }
        let Some(id) = name.strip_suffix(".want") else {
            continue;
        };
        if id == own || dir.join(format!("{id}.done")).exists() {
            continue;
        }
        let Ok(mut f) = File::open(e.path()) else {
            continue;
        };
        match f.try_lock() {
            Ok(()) => {
                // Its owner is gone (killed): nobody waits for this any more.
                let _ = fs::remove_file(e.path());
                let _ = fs::remove_file(dir.join(format!("{id}.done")));
                continue;
            }
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(_)) => continue,
        }
        let mut text = Vec::new();
        if f.read_to_end(&mut text).is_err() {
            continue;
        }
        if let Ok(intent) = serde_json::from_slice::<Intent>(&text) {
            out.push((id.to_owned(), intent));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn older_than(e: &fs::DirEntry, age: Duration) -> bool {
    e.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|a| a > age)
}

/// We hold the NIC's lock: write for everyone waiting, answer them, return our own result.
fn hold(
    api: &Api,
    dir: &Path,
    mine: &Mine,
    t: &Target,
    accepted: &mut dyn FnMut(),
    deadline: &Deadline,
) -> Result<(), CloudError> {
    // The previous holder may have done our part just before we got the lock.
    let alone = match mine.outcome() {
        Some(Outcome::Done) => return Ok(()),
        Some(Outcome::Failed { kind, msg }) => return Err(from_failed(kind, msg)),
        Some(Outcome::Alone) => true,
        None => mine.intent.alone,
    };
    let others: Vec<(String, Intent)> = if alone {
        Vec::new()
    } else {
        collect(dir, &mine.id)
            .into_iter()
            .filter(|(_, i)| !i.alone)
            .collect()
    };
    // One want per address: the latest action's (ids sort by time; ours is compared by id).
    let mut batch: Vec<Entry> = Vec::new();
    let mut superseded: Vec<String> = Vec::new();
    let mut own_superseded = false;
    let mut all: Vec<(Option<String>, &str, &Want)> = others
        .iter()
        .map(|(id, i)| (Some(id.clone()), id.as_str(), &i.want))
        .collect();
    all.push((None, mine.id.as_str(), &mine.intent.want));
    all.sort_by(|a, b| a.1.cmp(b.1));
    for (id, _, want) in all.iter().rev() {
        if batch.iter().any(|e| e.want.ip == want.ip) {
            match id {
                Some(id) => superseded.push(id.clone()),
                None => own_superseded = true,
            }
            continue;
        }
        batch.push(Entry {
            id: id.clone(),
            want: (*want).clone(),
        });
    }
    for id in &superseded {
        answer(
            dir,
            id,
            &Outcome::Failed {
                kind: Kind::Conflict,
                msg: "a later action of this node wants this address otherwise".into(),
            },
        );
    }
    let mut joiners = Joiners {
        dir,
        own: &mine.id,
        known: batch
            .iter()
            .filter_map(|e| e.id.clone())
            .chain(superseded)
            .collect(),
        closed: alone,
        joined: 0,
    };
    let initial = batch.len();
    let result = settle_list(
        api,
        t,
        Some(dir),
        &mut batch,
        Some(&mut joiners),
        accepted,
        deadline,
    );
    let several = initial + joiners.joined > 1;
    // Entries still in the batch share its result; dropped ones were answered already.
    for id in batch.iter().filter_map(|e| e.id.as_ref()) {
        match result.as_ref().map_err(CloudError::kind) {
            Ok(_) => answer(dir, id, &Outcome::Done),
            // Out of time or still conflicting: let each try with its own deadline.
            Err(CloudError::Transient(_) | CloudError::Conflict(_)) => {}
            // Refused, and which entry was at fault is unknown: each alone.
            Err(CloudError::Invalid(_)) if several => answer(dir, id, &Outcome::Alone),
            Err(e) => answer(dir, id, &to_outcome(e)),
        }
    }
    if own_superseded {
        return Err(CloudError::Conflict(format!(
            "a later action of this node wants {} otherwise",
            mine.intent.want.ip
        )));
    }
    match result.map_err(CloudError::into_kind) {
        Err(CloudError::Invalid(_)) if several => {
            // Ours alone, to learn whether it was ours.
            let own = mine.intent.want.clone();
            own_result(settle_list(
                api,
                t,
                None,
                &mut vec![Entry::own(own)],
                None,
                accepted,
                deadline,
            ))
        }
        r => own_result(r),
    }
}

/// The intents that arrive while the holder reads: taken into the write it is about to
/// make, so actions that started a moment apart still share one operation.
struct Joiners<'a> {
    dir: &'a Path,
    own: &'a str,
    /// Intents already in the batch or answered.
    known: Vec<String>,
    /// Writing alone: nobody joins.
    closed: bool,
    joined: usize,
}

impl Joiners<'_> {
    fn join(&mut self, batch: &mut Vec<Entry>) {
        if self.closed {
            return;
        }
        for (id, intent) in collect(self.dir, self.own) {
            // An address already in the batch is the next holder's to decide.
            if intent.alone
                || self.known.contains(&id)
                || batch.iter().any(|e| e.want.ip == intent.want.ip)
            {
                continue;
            }
            self.known.push(id.clone());
            self.joined += 1;
            batch.push(Entry {
                id: Some(id),
                want: intent.want,
            });
        }
    }
}

/// Read, write and verify until the NIC's list satisfies every entry's want, as seen in a
/// settled read. Entries found in conflict (their
/// address is in use elsewhere) are answered and dropped on the way; the holder's own
/// conflict is `Ok(Some(message))` once the rest has settled.
///
/// The cross-node bound: another node's write can undo ours only if it was accepted before
/// our verifying read settled (then that read shows it, and we write again) or if it was
/// built from a read older than our change landing (then its fingerprint is stale and GCE
/// refuses it with 412, in either reading of "the fingerprint changes after every update").
/// So when this returns Ok, no write built before can still remove what it verified: the
/// window is closed at return, and each rewrite costs one more operation while it is open.
fn settle_list(
    api: &Api,
    t: &Target,
    dir: Option<&Path>,
    batch: &mut Vec<Entry>,
    mut joiners: Option<&mut Joiners>,
    accepted: &mut dyn FnMut(),
    deadline: &Deadline,
) -> Result<Option<String>, CloudError> {
    let mut wrote = 0u32;
    let mut own_conflict: Option<String> = None;
    // A refused write (412, or a busy instance with nothing in flight to wait for) is
    // tried again soon; a failing API less often.
    let mut refused = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), true);
    let mut failing = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), true);
    loop {
        if deadline.remaining() < Duration::from_millis(50) {
            return Err(transient(format!(
                "the aliases of {} did not settle before the deadline",
                t.show()
            )));
        }
        let step = read_and_write(
            api,
            t,
            batch,
            joiners.as_deref_mut(),
            wrote > 0,
            accepted,
            deadline,
        );
        let err = match step {
            Ok(Step::Settled) => {
                if wrote > 1 {
                    log::info!(
                        "the aliases of {} are as wanted after {wrote} writes",
                        t.show()
                    );
                }
                return Ok(own_conflict);
            }
            Ok(Step::Wrote) => {
                wrote += 1;
                continue;
            }
            Err(e) => e.into_kind(),
        };
        match err {
            CloudError::Conflict(m) if m.contains("IP_IN_USE_BY_ANOTHER_RESOURCE") => {
                // Which address? The message echoes the range as sent.
                let culprit = batch.iter().position(|e| {
                    e.want
                        .entry
                        .as_ref()
                        .and_then(|x| x["ipCidrRange"].as_str())
                        .is_some_and(|r| m.contains(&format!("'{r}'")))
                });
                let Some(i) = culprit.or_else(|| (batch.len() == 1).then_some(0)) else {
                    return Err(CloudError::Conflict(m));
                };
                let e = batch.remove(i);
                match (e.id, dir) {
                    (Some(id), Some(dir)) => answer(
                        dir,
                        &id,
                        &Outcome::Failed {
                            kind: Kind::Conflict,
                            msg: m,
                        },
                    ),
                    (Some(_), None) => return Err(CloudError::Conflict(m)),
                    (None, _) => own_conflict = Some(m),
                }
                if batch.is_empty() {
                    return Ok(own_conflict);
                }
            }
            // 412 or a busy instance: read again at once (the read waits for the op).
            CloudError::Conflict(m) => {
                log::debug!("{}: {m}; reading again", t.show());
                if refused.wait(deadline).is_err() {
                    return Err(CloudError::Conflict(m));
                }
            }
            CloudError::Transient(m) => {
                log::info!("{}: {m}; reading again", t.show());
                if failing.wait(deadline).is_err() {
                    return Err(CloudError::Transient(m));
                }
            }
            e => return Err(e),
        }
    }
}

enum Step {
    /// The list satisfies every want, read with nothing in flight.
    Settled,
    /// We wrote and our operation is DONE (to be verified by the next read).
    Wrote,
}

fn read_and_write(
    api: &Api,
    t: &Target,
    batch: &mut Vec<Entry>,
    joiners: Option<&mut Joiners>,
    rewriting: bool,
    accepted: &mut dyn FnMut(),
    deadline: &Deadline,
) -> Result<Step, CloudError> {
    let inst = match api
        .settled(t.zone, t.instance, None, deadline)
        .map_err(CloudError::into_kind)
    {
        Ok(i) => i,
        // A peer that no longer exists holds no alias.
        Err(CloudError::NotFound(m)) if !t.own => {
            return if batch.iter().all(|e| e.want.entry.is_none()) {
                Ok(Step::Settled)
            } else {
                Err(CloudError::NotFound(m))
            };
        }
        Err(e) => return Err(e),
    };
    let what = t.show();
    let nic = nics(&inst, &what)?
        .iter()
        .find(|n| n.get("name").and_then(Value::as_str) == Some(t.nic))
        .ok_or_else(|| {
            let m = format!("{} has no network interface {}", t.instance, t.nic);
            if t.own {
                CloudError::Local(m)
            } else {
                transient(m)
            }
        })?;
    let list = aliases_of(nic, &what)?;
    let fingerprint = field(nic, "fingerprint", &what)?.to_owned();
    if let Some(j) = joiners {
        j.join(batch);
    }
    let wants: Vec<Want> = batch.iter().map(|e| e.want.clone()).collect();
    if batch.len() > 1 && !rewriting {
        log::info!(
            "writing the aliases of {what} for {} actions of this node at once",
            batch.len()
        );
    }
    if satisfied(&list, &wants) {
        return Ok(Step::Settled);
    }
    if rewriting {
        log::info!(
            "the aliases of {what} changed after our write (another node's write?); writing again"
        );
    }
    for w in wants.iter().filter(|w| !w.met_by(&list)) {
        match w.entry {
            Some(_) => log::info!("adding {} to {what}", w.ip),
            None => log::info!("removing {} from {what}", w.ip),
        }
    }
    let new = merged(&list, &wants);
    let op = api.patch_aliases(t.zone, t.instance, t.nic, &fingerprint, &new, deadline)?;
    accepted();
    api.wait(t.zone, &op, deadline)?;
    Ok(Step::Wrote)
}
