//! cloudvip: a Pacemaker OCF resource agent that moves a virtual IP between nodes on GCE,
//! OCI or a plain LAN. main only turns argv and the environment into an action and the
//! action's outcome into an exit code and exit reason. The same binary is the admin CLI
//! (`status`, `diagnose`, `--param`/`--config`), see `admin.rs`.

use cloudvip::{admin, agent, local, ocf};

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use ocf::env::OcfEnv;
use ocf::log::{exit_reason, OcfLogger};
use ocf::Status;

const AFTER_HELP: &str = "\
Pacemaker runs `cloudvip <action>` with the parameters in OCF_RESKEY_<name> variables.
By hand, give them with --param or a file instead:

  cloudvip diagnose --param ip=10.0.0.250 --param cloud=gce
        what is missing (metadata, credentials, permissions, NIC, subnet) and how to fix it
  cloudvip status --config /etc/cloudvip/vip.conf
        who holds the VIP, on this node and in the cloud
  cloudvip start --config /etc/cloudvip/vip.conf --timeout 60
        move the VIP here (e.g. from a database failover callback or keepalived notify)
  cloudvip start --dry-run --config /etc/cloudvip/vip.conf
        what that start would change (cloud calls, local address), changing nothing

A config file has one NAME=VALUE per line (# comments). `cloudvip meta-data` and
`man ocf_rust_cloudvip` describe every parameter; `cloudvip usage` lists the exit codes.";

#[derive(Parser)]
#[command(
    name = "cloudvip",
    version,
    about = "Moves a virtual IP between cluster nodes on GCE, Oracle Cloud or a plain LAN \
             (a Pacemaker OCF resource agent, and a tool to check and run it by hand)",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Set a parameter, as Pacemaker's OCF_RESKEY_NAME would (repeat for more)
    #[arg(
        long = "param",
        short = 'p',
        value_name = "NAME=VALUE",
        global = true,
        action = clap::ArgAction::Append
    )]
    params: Vec<OsString>,
    /// Read parameters from FILE (NAME=VALUE lines); --param wins over it
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Give up after this many seconds (Pacemaker passes its operation timeout; default 20)
    #[arg(long, value_name = "SECONDS", global = true)]
    timeout: Option<u64>,
    /// With start, stop or migrate_from: print the cloud calls and local changes it would
    /// make, with the current holders, and change nothing (read-only calls only)
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Action(ocf::Action),
    /// Show who holds the VIP, on this node and in the cloud, in one table (not for Pacemaker)
    Status,
    /// Check metadata, credentials, permissions, NIC and subnet; say what to fix (not for Pacemaker)
    Diagnose,
}

fn main() -> ExitCode {
    // `cloudvip meta-data` alone (how Pacemaker, pcs and crm_resource ask) is answered before
    // the environment and clap are read: its peak RSS is that of printing the XML.
    let mut args = std::env::args_os().skip(1);
    if let (Some(a), None) = (args.next(), args.next()) {
        if a == "meta-data" {
            return match agent::run(ocf::Action::MetaData, &OcfEnv::default()) {
                Ok(status) => ExitCode::from(status.code()),
                Err(err) => {
                    eprintln!("cloudvip: {}", ocf::reason_of(&err));
                    ExitCode::from(ocf::status_of(&err).code())
                }
            };
        }
    }
    let mut env = OcfEnv::from_process();
    // The background processes re-execute this binary (local/daemon.rs): not commands for
    // humans, so not in the help; no parameters, no logging.
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let daemon: Option<fn(&[String]) -> u8> = match argv.first().map(String::as_str) {
        Some(local::announcer::SUBCOMMAND) => Some(local::announcer::run),
        Some(local::responder::SUBCOMMAND) => Some(local::responder::run),
        Some(local::fim::SUBCOMMAND) => Some(local::fim::run),
        _ => None,
    };
    if let Some(run) = daemon {
        return ExitCode::from(run(&argv[1..]));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Status::Success,
                // OCF: an action we do not implement is OCF_ERR_UNIMPLEMENTED.
                ErrorKind::InvalidSubcommand
                | ErrorKind::MissingSubcommand
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Status::ErrUnimplemented,
                _ => Status::ErrArgs,
            };
            let _ = e.print();
            if code != Status::Success {
                // args_os: argv may hold any bytes, and args() would panic on them.
                let reason = match std::env::args_os().nth(1) {
                    Some(arg) => format!("unsupported action {:?}", arg.to_string_lossy()),
                    None => "no action given".to_owned(),
                };
                exit_reason(&env.exit_reason_prefix, &reason);
            }
            return ExitCode::from(code.code());
        }
    };
    let admin_flags = !cli.params.is_empty() || cli.config.is_some() || cli.timeout.is_some();
    // `status` was an action of the old OCF drafts; to a caller speaking OCF (Pacemaker
    // and the OCF tools always set OCF_RESOURCE_INSTANCE) it stays unimplemented, as
    // before. From a shell it is the admin table.
    if matches!(cli.command, Command::Status) && env.instance.is_some() && !admin_flags {
        exit_reason(
            &env.exit_reason_prefix,
            "unsupported action \"status\" (OCF callers use monitor; `cloudvip status` \
             from a shell, without OCF_RESOURCE_INSTANCE, shows who holds the VIP)",
        );
        return ExitCode::from(Status::ErrUnimplemented.code());
    }
    if admin_flags {
        if let Err(e) = admin::apply(&mut env, cli.config.as_deref(), &cli.params, cli.timeout) {
            exit_reason(&env.exit_reason_prefix, &e.reason);
            return ExitCode::from(e.status.code());
        }
    }
    OcfLogger::new(&env.log, env.instance.as_deref()).install(env.log.debug);
    for var in &env.ignored {
        log::warn!("ignoring {var}: its value is not valid UTF-8");
    }
    let action = match cli.command {
        Command::Action(a) => a,
        Command::Status | Command::Diagnose => {
            if cli.dry_run {
                eprintln!(
                    "cloudvip: status and diagnose change nothing; --dry-run is for start and stop"
                );
            }
            let run = match cli.command {
                Command::Status => admin::status(&env),
                _ => admin::diagnose(&env),
            };
            return match run {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("cloudvip: {}", ocf::reason_of(&err));
                    ExitCode::FAILURE
                }
            };
        }
    };
    let run = if cli.dry_run {
        admin::dry_run(&env, action)
    } else {
        agent::run(action, &env)
    };
    match run {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            let status = ocf::status_of(&err);
            exit_reason(&env.exit_reason_prefix, &ocf::reason_of(&err));
            ExitCode::from(status.code())
        }
    }
}
