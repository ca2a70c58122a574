//! `cloudvip-sim` command line: run a world (prints one JSON line with the endpoints when
//! ready, serves until killed or a bound is reached), write service-account keys, generate a
//! test CA and leaf certificate. All behaviour lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cloudvip_sim::{Sim, World};

const USAGE: &str = "usage:
  cloudvip-sim --config WORLD.toml [--tls-cert PEM --tls-key PEM] [--admin-listen ADDR]
               [--max-seconds N] [--max-requests N] [--write-key EMAIL=PATH]...
  cloudvip-sim gen-tls --out-dir DIR NAME_OR_IP...
  cloudvip-sim check --config WORLD.toml";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudvip-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn value(args: &[String], i: &mut usize, flag: &str) -> Result<String, String> {
    *i += 1;
    args.get(*i)
        .cloned()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
}

fn run(args: Vec<String>) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("gen-tls") {
        let mut dir = None;
        let mut names = Vec::new();
        let mut i = 1;
        while i < args.len() {
            match args[i].as_str() {
                "--out-dir" => dir = Some(PathBuf::from(value(&args, &mut i, "--out-dir")?)),
                n if !n.starts_with('-') => names.push(n.to_string()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
            i += 1;
        }
        let dir = dir.ok_or_else(|| format!("--out-dir is required\n{USAGE}"))?;
        if names.is_empty() {
            return Err(format!("at least one host name or IP is required\n{USAGE}"));
        }
        let g = cloudvip_sim::tls::generate(&dir, &names)?;
        println!("{}", serde_json::to_string(&g).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let check_only = args.first().map(String::as_str) == Some("check");
    let mut config = None;
    let mut tls_cert = None;
    let mut tls_key = None;
    let mut admin = None;
    let mut max_secs = None;
    let mut max_reqs = None;
    let mut keys = Vec::new();
    let mut i = usize::from(check_only);
    while i < args.len() {
        let a = args[i].clone();
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value(&args, &mut i, &a)?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value(&args, &mut i, &a)?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value(&args, &mut i, &a)?)),
            "--admin-listen" => {
                admin = Some(
                    value(&args, &mut i, &a)?
                        .parse()
                        .map_err(|e| format!("--admin-listen: {e}"))?,
                )
            }
            "--max-seconds" => {
                max_secs = Some(
                    value(&args, &mut i, &a)?
                        .parse::<u64>()
                        .map_err(|e| format!("--max-seconds: {e}"))?,
                )
            }
            "--max-requests" => {
                max_reqs = Some(
                    value(&args, &mut i, &a)?
                        .parse::<u64>()
                        .map_err(|e| format!("--max-requests: {e}"))?,
                )
            }
            "--write-key" => {
                let v = value(&args, &mut i, &a)?;
                let (email, path) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--write-key wants EMAIL=PATH, got {v}"))?;
                keys.push((email.to_string(), PathBuf::from(path)));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
        i += 1;
    }
    let config = config.ok_or_else(|| format!("--config is required\n{USAGE}"))?;
    let mut world = World::load(&config)?;
    if check_only {
        println!("ok");
        return Ok(());
    }
    if tls_cert.is_some() || tls_key.is_some() {
        world.server.tls_cert = tls_cert;
        world.server.tls_key = tls_key;
    }
    if let Some(a) = admin {
        world.server.admin_listen = a;
    }
    let sim = Sim::start(world)?;
    for (email, path) in &keys {
        let gce = sim.gce().ok_or("--write-key needs a [gce] world")?;
        let file = gce.new_key_file(email)?;
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        write_private(path, &text)?;
    }
    let line = serde_json::to_string(&sim.endpoints()).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if max_secs.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
            break;
        }
        if max_reqs.is_some_and(|n| sim.requests() >= n) {
            // Let the last response leave before stopping.
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
    }
    sim.stop();
    Ok(())
}

fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
