//! Real Pacemaker clusters (issue 5): N nodes of Corosync 3 + Pacemaker 2.1 in network,
//! mount and UTS namespaces, a client, and cloudvip-sim playing GCE or OCI, with the agent
//! configured exactly as in production (`pcs resource create VIP ocf:rust:cloudvip` with no
//! endpoint or CA parameter: the nodes resolve the clouds' host names to the emulator and
//! trust only its test CA). Scenarios 1-7 for both clouds, and the client-observed outage
//! of standby, move and crash at emulator latency 0 and at a realistic one (printed, never
//! asserted). Run one at a time (see .config/nextest.toml).

mod clouds;
mod harness;
mod scenarios;

use clouds::{Cloud, Latency};

macro_rules! cloud_tests {
    ($m:ident, $cloud:expr) => {
        mod $m {
            use super::*;

            /// Scenarios 1, 2, 3 and 7.
            #[test]
            fn create_standby_move_public_ip_follows() {
                scenarios::create_standby_move($cloud);
            }

            /// Scenario 4, on three nodes.
            #[test]
            fn crash_of_active_node_recovers_on_another() {
                scenarios::crash_recovers($cloud);
            }

            /// Scenario 5.
            #[test]
            fn vip_removed_behind_pacemakers_back_is_recovered() {
                scenarios::removed_behind_back($cloud);
            }

            /// Scenario 6.
            #[test]
            fn api_outage_no_failover_no_fencing() {
                scenarios::api_outage($cloud);
            }

            #[test]
            fn outage_windows_latency_zero() {
                scenarios::outage_windows($cloud, Latency::Zero, 3);
            }

            #[test]
            fn outage_windows_latency_realistic() {
                scenarios::outage_windows($cloud, Latency::Realistic, 3);
            }
        }
    };
}

cloud_tests!(gce, Cloud::Gce);
cloud_tests!(oci, Cloud::Oci);
