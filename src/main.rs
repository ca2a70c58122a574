//! cloudvip: a Pacemaker OCF resource agent that moves a virtual IP between nodes on GCE,
//! OCI or a plain LAN. main only turns argv and the environment into an action and the
//! action's outcome into an exit code and exit reason.

mod agent;
mod cloud;
mod deadline;
mod http;
mod local;
mod ocf;
mod params;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use ocf::env::OcfEnv;
use ocf::log::{exit_reason, OcfLogger};
use ocf::Status;

#[derive(Parser)]
#[command(
    name = "cloudvip",
    version,
    about = "Pacemaker OCF resource agent: moves a virtual IP on GCE, OCI or a plain LAN",
    after_help = "Parameters come from OCF_RESKEY_<name> variables; `cloudvip meta-data` lists them."
)]
struct Cli {
    #[command(subcommand)]
    action: ocf::Action,
}

fn main() -> ExitCode {
    let env = OcfEnv::from_process();
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
                let reason = match std::env::args().nth(1) {
                    Some(arg) => format!("unsupported action {arg:?}"),
                    None => "no action given".to_owned(),
                };
                exit_reason(&env.exit_reason_prefix, &reason);
            }
            return ExitCode::from(code.code());
        }
    };
    OcfLogger::new(&env.log, env.instance.as_deref()).install(env.log.debug);
    match agent::run(cli.action, &env) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            let status = ocf::status_of(&err);
            exit_reason(&env.exit_reason_prefix, &ocf::reason_of(&err));
            ExitCode::from(status.code())
        }
    }
}
