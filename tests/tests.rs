//! The integration tests: one binary (ripgrep-style), each module one concern. They run the
//! real `cloudvip` binary; the ones that need network namespaces, ocf-tester or Pacemaker's
//! CLI need root and fail loudly without it (CI runs as root).

// Runs the agent and checks exit codes and exit reasons.
mod util;
// A private OCF root for the agent under test (never /usr/lib/ocf).
mod ocf_root;
// Network namespaces with a bridge: nodes A, B and client C, removed on drop.
mod netns;
// The table of bad inputs: exit code and exit-reason text for each.
mod params;
// start/stop/monitor/failover on real kernel networking, IPv4 and IPv6, seen from a client.
mod actions;
// Meta-data: golden file, DTD, the README's parameter table.
mod metadata;
// ocf_log behaviour: HA_LOGFILE, HA_debug, stderr, the exit-reason line.
mod logging;
// ocf-tester and crm_resource against the installed agent.
mod ocf_tools;
// Three VMs and the emulator in namespaces, for the cloud backends.
mod cloudlab;
// One test world per cloud on the emulator's world types, and its admin client.
mod clouds;
// The GCE backend against cloudvip-sim.
mod gce;
// GCE under parallel actions on one NIC, nodes racing, and kills at every step.
mod gce_race;
// The OCI backend against cloudvip-sim.
mod oci;
// Scenarios every backend must pass, run once per cloud (cloudtest!).
mod backends;
// One token refresh shared by parallel actions, both clouds, Pacemaker's environment.
mod tokens;
// Monitor fails only on evidence: a cloud that cannot be asked is a WARNING, both clouds.
mod monitor;
// Real Pacemaker clusters on emulated GCE and OCI, production configuration, seen from a client.
mod cluster;
// The admin CLI: status, diagnose, actions with --param/--config, against the emulator.
mod admin;
// start/stop --dry-run: reads only, nothing changed, and the plan is what the action does.
mod dryrun;
// pcs-examples/: every script run with stand-in tools, its resources through crm_resource.
mod examples;
// The unmodified Debian anchors (gcp-vpc-move-vip, ocivip) and gcloud against cloudvip-sim.
mod anchors;
// The fault matrix: every action under every fault, both clouds, printed as a table.
mod faults;
// No secret the emulator issued in any log the suite kept (scripts/secret-scan.sh).
mod secret_scan;
// HA_debug: the agent's own steps, library internals only when asked for.
mod debug_log;
// Exit reasons within Pacemaker's 128 bytes, the details in the log.
mod exit_reasons;
// IPv6 VIPs on the clouds: refused on GCE, the Ipv6 object moved on OCI.
mod cloud_ipv6;
// The unmodified Debian AWS anchors (awsvip, awseip, aws-vpc-move-ip) against cloudvip-sim.
mod anchors_aws;
// The AWS client layer (SigV4, IMDSv2, EC2 Query, STS) against cloudvip-sim on loopback.
mod aws_client;
// The AWS backend's flows per mode against cloudvip-sim on loopback: moves, plans, refusals.
mod aws_backend;
// The probe responder of load-balancer mode: probes from another host, ownership, stop.
mod responder;
// resource-agents' ocft: our config (cloud=none) and the IPaddr2 configs against cloudvip.
mod ocft;
// The emulated load balancer: probes, client traffic to the one healthy backend, failover.
mod lb;
// OS agents that remove or fight the VIP: start's warning and diagnose, on fake node files.
mod os_agents;
// OCF 1.1 reload-agent: new reloadable parameters applied without touching the VIP.
mod reload;
// GCE's static external IP and the node it leaves: restore_ephemeral_ip.
mod public_ip;
