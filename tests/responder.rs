//! The probe responder (`__respond`, src/local/responder.rs) as the agent binary runs it,
//! in network namespaces: a load balancer's probe from another host gets its answer on
//! IPv4, IPv6 or both; the responder outlives the process that started it, belongs to its
//! resource (pid file, never a stranger signalled) and ends at stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudvip::deadline::Deadline;
use cloudvip::local::responder::{self, Listen, Probe, Spec};

use crate::netns::Lab;
use crate::util::{sh, BIN};

const PORT: u16 = 62503;

/// Run `f` on a thread inside namespace `ns` (sockets and children it creates live there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        Lab::enter(&ns);
        f()
    })
    .join()
    .expect("thread in the namespace")
}

fn dl() -> Deadline {
    Deadline::for_timeout(Some(Duration::from_secs(10)))
}

fn http(path: &str) -> Probe {
    Probe::Http {
        path: path.to_owned(),
    }
}

/// Start `resource`'s responder in `ns` from this process, as the agent's start will.
pub fn start(ns: &str, state: &Path, resource: &str, spec: &Spec) -> responder::Started {
    let (state, resource, spec) = (state.to_owned(), resource.to_owned(), spec.clone());
    in_ns(ns, move || {
        responder::start_responder_from(Path::new(BIN), &state, &resource, &spec, &dl())
            .expect("start_responder")
    })
}

/// One probe from namespace `ns` to `to`; its time on success.
pub fn probe_from(ns: &str, to: SocketAddr, p: &Probe) -> Result<Duration, String> {
    let p = p.clone();
    in_ns(ns, move || {
        responder::probe(to, &p, Duration::from_secs(2)).map_err(|e| e.to_string())
    })
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

fn wait_dead(pid: i32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The probes a load balancer on host 2 sends to host 1, on each family, as listen says.
#[test]
fn answers_tcp_and_http_probes_on_the_families_listen_names() {
    let lab = Lab::new(2);
    let state = tempfile::tempdir().unwrap();
    let v4 = sock(&format!("10.66.0.1:{PORT}"));
    let v6 = sock(&format!("[fd00:66::1]:{PORT}"));
    for (listen, want4, want6) in [
        (Listen::Ipv4, true, false),
        (Listen::Ipv6, false, true),
        (Listen::Both, true, true),
        (Listen::Address("10.66.0.1".parse().unwrap()), true, false),
    ] {
        let spec = Spec {
            port: PORT,
            listen: listen.clone(),
            probe: http("/health"),
        };
        let s = start(lab.ns(1), state.path(), "vip", &spec);
        assert!(!s.kept);
        for (to, want) in [(v4, want4), (v6, want6)] {
            let got = probe_from(lab.ns(2), to, &spec.probe);
            assert_eq!(got.is_ok(), want, "{listen:?} probed at {to}: {got:?}");
            if want {
                let tcp = probe_from(lab.ns(2), to, &Probe::Tcp);
                assert!(tcp.is_ok(), "a TCP probe at {to}: {tcp:?}");
                let other = probe_from(lab.ns(2), to, &http("/other"));
                assert!(
                    other.as_ref().is_err_and(|e| e.contains("404")),
                    "{other:?}"
                );
            }
        }
        let stopped = in_ns(lab.ns(1), {
            let st = state.path().to_owned();
            move || responder::stop_responder(&st, "vip", &dl()).unwrap()
        });
        assert!(stopped, "stop ends the responder");
        assert!(wait_dead(s.pid, Duration::from_secs(2)));
        assert!(probe_from(lab.ns(2), v4, &Probe::Tcp).is_err());
    }
}

/// A TCP-mode responder: the handshake is the answer; an HTTP request gets no answer.
#[test]
fn a_tcp_responder_accepts_and_closes() {
    let lab = Lab::new(2);
    let state = tempfile::tempdir().unwrap();
    let spec = Spec {
        port: PORT,
        listen: Listen::Both,
        probe: Probe::Tcp,
    };
    start(lab.ns(1), state.path(), "vip", &spec);
    let to = sock(&format!("10.66.0.1:{PORT}"));
    assert!(probe_from(lab.ns(2), to, &Probe::Tcp).is_ok());
    assert!(probe_from(lab.ns(2), to, &http("/")).is_err());
}

/// Idempotent start, ownership and stop: the same spec keeps the running responder, a new
/// spec replaces it; a pid file naming another process ends it by itself; stop never
/// signals a process that is not this resource's responder.
#[test]
fn the_responder_belongs_to_its_resource() {
    let lab = Lab::new(1);
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_owned();
    let spec = Spec {
        port: PORT,
        listen: Listen::Ipv4,
        probe: http("/health"),
    };
    let first = start(lab.ns(1), &st, "vip", &spec);
    let again = start(lab.ns(1), &st, "vip", &spec);
    assert_eq!(
        again,
        responder::Started {
            pid: first.pid,
            kept: true
        }
    );
    // A second resource on another port runs beside it.
    let other = Spec {
        port: PORT + 1,
        ..spec.clone()
    };
    let second = start(lab.ns(1), &st, "vip2", &other);
    assert!(!second.kept && second.pid != first.pid);
    // A changed spec (another path) replaces this resource's responder.
    let changed = Spec {
        probe: http("/ready"),
        ..spec.clone()
    };
    let third = start(lab.ns(1), &st, "vip", &changed);
    assert!(!third.kept && third.pid != first.pid);
    assert!(wait_dead(first.pid, Duration::from_secs(2)));
    assert!(
        alive(second.pid),
        "the other resource's responder is untouched"
    );

    // A stranger's pid in the pid file (a sleep): stop leaves it alone.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pf = responder::pidfile(&st, "vip");
    let start_ticks = sh(&[
        "sh",
        "-c",
        &format!("cut -d' ' -f22 /proc/{}/stat", sleeper.id()),
    ]);
    std::fs::write(&pf, format!("{} {}", sleeper.id(), start_ticks.trim())).unwrap();
    // The responder sees its pid file name another process and ends by itself.
    assert!(
        wait_dead(third.pid, Duration::from_secs(5)),
        "a disowned responder exits"
    );
    let stopped = in_ns(lab.ns(1), {
        let st = st.clone();
        move || responder::stop_responder(&st, "vip", &dl()).unwrap()
    });
    assert!(!stopped, "nothing of ours to stop");
    assert!(alive(sleeper.id() as i32), "stop never signals a stranger");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // Removing the state directory (a lost owner) ends the other one too.
    drop(state);
    assert!(wait_dead(second.pid, Duration::from_secs(5)));
}

/// A port someone else holds: start fails with the cause and leaves no record.
#[test]
fn a_taken_port_fails_start_with_the_cause() {
    let lab = Lab::new(1);
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_owned();
    let held = in_ns(lab.ns(1), move || {
        std::net::TcpListener::bind(("0.0.0.0", PORT)).unwrap()
    });
    let spec = Spec {
        port: PORT,
        listen: Listen::Ipv4,
        probe: Probe::Tcp,
    };
    let err = in_ns(lab.ns(1), {
        let st = st.clone();
        move || {
            responder::start_responder_from(Path::new(BIN), &st, "vip", &spec, &dl()).unwrap_err()
        }
    });
    assert!(err.to_string().contains("the port is in use"), "{err}");
    assert!(!responder::pidfile(&st, "vip").exists());
    drop(held);
}

/// The responder keeps answering after the process that started it exited (the agent's
/// start action): a helper process of this test binary starts it and exits.
#[test]
fn the_responder_outlives_its_starter() {
    let lab = Lab::new(2);
    let state = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", lab.ns(1)])
        .arg(&exe)
        .args([
            "--exact",
            "responder::starter_helper",
            "--ignored",
            "--nocapture",
        ])
        .env("CLOUDVIP_TEST_STARTER", state.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("responder pid "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text}"));
    assert!(alive(pid));
    let to = sock(&format!("10.66.0.1:{PORT}"));
    let mut times = Vec::new();
    for _ in 0..20 {
        times.push(probe_from(lab.ns(2), to, &http("/health")).expect("answers"));
    }
    times.sort();
    println!(
        "probe answer time from another host (HTTP, 20 probes): median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    let stopped = in_ns(lab.ns(1), {
        let st = state.path().to_owned();
        move || responder::stop_responder(&st, "vip", &dl()).unwrap()
    });
    assert!(stopped);
}

/// Not a test on its own: the starter process of `the_responder_outlives_its_starter`.
#[test]
#[ignore]
fn starter_helper() {
    let Some(state) = std::env::var_os("CLOUDVIP_TEST_STARTER").map(PathBuf::from) else {
        return;
    };
    let spec = Spec {
        port: PORT,
        listen: Listen::Both,
        probe: http("/health"),
    };
    let s = responder::start_responder_from(Path::new(BIN), &state, "vip", &spec, &dl())
        .expect("start_responder");
    println!("responder pid {}", s.pid);
}
