//! Real Pacemaker clusters (issue 5): N nodes of Corosync 3 + Pacemaker 2.1 in network,
//! mount and UTS namespaces, a client, and cloudvip-sim playing GCE, OCI or AWS (each
//! AWS mode: secondary IP with its Elastic IP, Elastic IP alone, overlay route), with the agent
//! configured exactly as in production (`pcs resource create VIP ocf:rust:cloudvip` with no
//! endpoint or CA parameter: the nodes resolve the clouds' host names to the emulator and
//! trust only its test CA), and with exactly the environment Pacemaker gives it (no
//! HA_RSCTMP). Scenarios 1-7 for every cloud, an API outage longer than an operation that
//! heals without `pcs resource cleanup` (issue 9; for AWS in its first mode only), and the client-observed outage
//! of standby, move and crash at emulator latency 0 and at a realistic one (printed, never
//! asserted). Issue 11 through pcs (pcmk.rs): a duplicate ip refused, reload-agent instead
//! of a restart, a denied permission named in `pcs status`. Run one at a time (see
//! .config/nextest.toml).

pub mod clouds;
pub mod harness;
mod lb;
mod pcmk;
mod scenarios;

use clouds::Latency;

macro_rules! cloud_tests {
    ($m:ident, $cloud:expr) => {
        cloud_tests!(@mod $m, $cloud, {
            /// Issue 9: the API down 60 s during a standby; back without cleanup.
            #[test]
            fn api_outage_longer_than_an_operation_heals_without_cleanup() {
                scenarios::outage_heals($cloud);
            }
        });
    };
    // Without the 2-minute outage that heals (the same start retries and failure-timeout
    // whatever the backend's write is): for a cloud's second and third mode.
    ($m:ident, $cloud:expr, lean) => {
        cloud_tests!(@mod $m, $cloud, {});
    };
    (@mod $m:ident, $cloud:expr, { $($extra:item)* }) => {
        mod $m {
            use super::*;

            /// Scenarios 1, 2, 3 and 7; outage of standby and move at latency 0.
            #[test]
            fn create_standby_move_public_ip_follows() {
                scenarios::create_standby_move($cloud, 3);
            }

            /// Scenario 4, on three nodes; outage of a crash at latency 0.
            #[test]
            fn crash_of_active_node_recovers_on_another() {
                scenarios::crash_recovers($cloud, 3);
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

            /// Outage of standby, move and crash with the cloud as slow as the real one.
            #[test]
            fn outage_windows_latency_realistic() {
                scenarios::outage_windows($cloud, Latency::Realistic, 3);
            }

            $($extra)*
        }
    };
}

cloud_tests!(gce, crate::clouds::gce::GCE);
cloud_tests!(oci, crate::clouds::oci::OCI);
cloud_tests!(aws_secondary_ip, crate::clouds::aws::AWS_SECONDARY_IP);
cloud_tests!(aws_eip, crate::clouds::aws::AWS_EIP, lean);
cloud_tests!(aws_route, crate::clouds::aws::AWS_ROUTE, lean);
