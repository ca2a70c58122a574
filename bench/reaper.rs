//! The benchmark's process-tree meter (bench/run.sh builds it with `rustc -O`; std only).
//!
//! `reaper SPEC OUT [--sample]` starts every job in SPEC at once with exactly the
//! environment SPEC gives (`env -i`), as a child subreaper so orphans (background
//! announcers, daemonised helpers) come back to it, and writes one JSON object to OUT:
//! wall time from just before the first spawn to each job's exit, exit codes, the
//! whole tree's user+sys CPU and the peak RSS of its largest process
//! (`getrusage(RUSAGE_CHILDREN)` after every descendant is reaped), and with `--sample`
//! which process that was (its `VmHWM`, polled every 2 ms; sampling costs CPU, so the
//! timed runs go without it). The tree gets at most 10 s after the last job to finish,
//! then whatever is left is killed by PID and counted in `left`.
//!
//! SPEC: `job` starts a job, then `env K=V`, `arg A` (the first is an absolute path) and
//! `out PATH` (stdout and stderr) lines.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[repr(C)]
#[derive(Default)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

const PR_SET_CHILD_SUBREAPER: i32 = 36;
const RUSAGE_CHILDREN: i32 = -1;
const WNOHANG: i32 = 1;
const SIGKILL: i32 = 9;
const TAIL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Job {
    env: Vec<(String, String)>,
    args: Vec<String>,
    out: Option<String>,
}

fn parse(spec: &str) -> Result<Vec<Job>, String> {
    let mut jobs: Vec<Job> = Vec::new();
    for line in spec.lines().filter(|l| !l.is_empty()) {
        let (key, val) = line.split_once(' ').unwrap_or((line, ""));
        if key == "job" {
            jobs.push(Job::default());
            continue;
        }
        let job = jobs.last_mut().ok_or("spec must start with `job`")?;
        match key {
            "env" => {
                let (k, v) = val
                    .split_once('=')
                    .ok_or(format!("bad env line {line:?}"))?;
                job.env.push((k.into(), v.into()));
            }
            "arg" => job.args.push(val.into()),
            "out" => job.out = Some(val.into()),
            _ => return Err(format!("unknown spec line {line:?}")),
        }
    }
    if jobs.is_empty() || jobs.iter().any(|j| j.args.is_empty()) {
        return Err("every job needs an `arg`".into());
    }
    Ok(jobs)
}

/// Children of `pid` (every thread's list: an orphan may be reparented to any of ours).
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    v
}

fn descendants() -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = children(std::process::id());
    while let Some(p) = todo.pop() {
        todo.extend(children(p));
        out.push(p);
    }
    out
}

/// pid -> (VmHWM KiB, name, command line) of every process seen in the tree.
type Seen = Arc<Mutex<HashMap<u32, (u64, String, String)>>>;

fn sample(seen: &Seen) {
    for pid in descendants() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        let mut g = seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = g.entry(pid).or_default();
        // A fork that has just exec'd is a new program: its own peak starts now.
        if entry.1 != name {
            entry.0 = 0;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            entry.1 = name;
            entry.2 = cmd.join(" ");
        }
        entry.0 = entry.0.max(hwm);
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (spec, out) = match (args.get(1), args.get(2)) {
        (Some(s), Some(o)) => (s, o),
        _ => return Err("usage: reaper SPEC OUT [--sample]".into()),
    };
    let sampling = args.iter().any(|a| a == "--sample");
    let jobs = parse(&std::fs::read_to_string(spec).map_err(|e| format!("{spec}: {e}"))?)?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!("prctl: {}", std::io::Error::last_os_error()));
    }
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sampling.then(|| {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sample(&seen);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    });

    let t0 = Instant::now();
    let mut pids = Vec::new();
    for j in &jobs {
        let mut c = Command::new(&j.args[0]);
        c.args(&j.args[1..]).env_clear().envs(j.env.iter().cloned());
        c.stdin(Stdio::null());
        // A pre_exec hook makes std fork instead of posix_spawn (vfork): a vfork child
        // carries the meter's whole peak RSS into its own ru_maxrss at exec, a forked
        // copy only the anonymous pages it was given.
        // SAFETY: the hook does nothing, so it is async-signal-safe.
        unsafe { c.pre_exec(|| Ok(())) };
        if let Some(p) = &j.out {
            let f = File::create(p).map_err(|e| format!("{p}: {e}"))?;
            let f2 = f.try_clone().map_err(|e| format!("{p}: {e}"))?;
            c.stdout(f).stderr(f2);
        }
        let child = c.spawn().map_err(|e| format!("{}: {e}", j.args[0]))?;
        pids.push(child.id() as i32);
        // Reaped below with waitpid(-1), which std's Child never learns about.
        std::mem::forget(child);
    }
    let mut exit_at: Vec<Option<Duration>> = vec![None; pids.len()];
    let mut rc: Vec<i32> = vec![-1; pids.len()];
    let mut tail_end: Option<Instant> = None;
    let mut left = 0usize;
    let mut killed_at: Option<Instant> = None;
    loop {
        let jobs_done = exit_at.iter().all(Option::is_some);
        let flags = if jobs_done { WNOHANG } else { 0 };
        let mut status = 0i32;
        // SAFETY: status points to a live i32.
        let pid = unsafe { waitpid(-1, &mut status, flags) };
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(4) => continue, // EINTR
                Some(10) => break,   // ECHILD: the whole tree is reaped
                _ => return Err(format!("waitpid: {e}")),
            }
        }
        if pid == 0 {
            // Only stragglers remain: they get until the tail deadline, then SIGKILL, then
            // at most 5 s to be reaped (never wait forever).
            let now = Instant::now();
            let end = *tail_end.get_or_insert(now + TAIL);
            match killed_at {
                None if now > end => {
                    let rest = descendants();
                    left = rest.len();
                    for p in rest {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { kill(p as i32, SIGKILL) };
                    }
                    killed_at = Some(now);
                }
                Some(k) if now > k + Duration::from_secs(5) => break,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if let Some(i) = pids.iter().position(|p| *p == pid) {
            exit_at[i] = Some(t0.elapsed());
            let code = (status >> 8) & 0xff;
            let sig = status & 0x7f;
            rc[i] = if sig != 0 { 128 + sig } else { code };
        }
    }
    let tail = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let mut ru = Rusage::default();
    // SAFETY: ru is a correctly laid out struct rusage (x86_64 / aarch64 Linux).
    unsafe { getrusage(RUSAGE_CHILDREN, &mut ru) };
    let us = |t: &Timeval| t.sec as f64 * 1000.0 + t.usec as f64 / 1000.0;
    let exits: Vec<Duration> = exit_at.iter().map(|e| e.unwrap_or_default()).collect();
    let wall = exits.iter().max().copied().unwrap_or_default();
    let largest = {
        let g = seen.lock().unwrap_or_else(|e| e.into_inner());
        g.values()
            .max_by_key(|v| v.0)
            .map(|(kb, _, cmd)| format!("{{\"hwm_kb\":{kb},\"cmd\":{}}}", json_str(cmd)))
            .unwrap_or_else(|| "null".into())
    };
    let list = |v: Vec<String>| v.join(",");
    let json = format!(
        "{{\"wall_ms\":{},\"exit_ms\":[{}],\"rc\":[{}],\"user_ms\":{:.3},\"sys_ms\":{:.3},\
         \"maxrss_kb\":{},\"tail_ms\":{},\"left\":{left},\"largest\":{largest}}}\n",
        ms(wall),
        list(exits.iter().map(|d| ms(*d)).collect()),
        list(rc.iter().map(|r| r.to_string()).collect()),
        us(&ru.utime),
        us(&ru.stime),
        ru.maxrss,
        ms(tail),
    );
    File::create(out)
        .and_then(|mut f| f.write_all(json.as_bytes()))
        .map_err(|e| format!("{out}: {e}"))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("reaper: {e}");
        std::process::exit(125);
    }
}
