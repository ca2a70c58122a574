//! Scenarios every cloud backend must pass, each run once per cloud by `cloudtest!` on that
//! cloud's standard lab (tests/clouds/); what only one cloud has stays in gce.rs / oci.rs.

use std::process::Command;

use crate::clouds::{cloudtest, TestCloud};
use crate::util::Run;

// Faults the API throws during a failover: the agent rides them out inside the deadline,
// and the cloud routes the VIP (and what follows it) to the new holder.
cloudtest!(transient_faults_are_retried, |lab| {
    let p = lab.fault_params();
    let mut on = 2;
    for f in lab.transient_faults() {
        lab.before_fault();
        lab.clear_faults();
        lab.fault(f.clone());
        let r = lab.agent(on, "start", &p).run();
        assert_eq!(
            r.code,
            0,
            "fault {f}: {}\n{}",
            r.stderr,
            r.reason().unwrap_or("")
        );
        assert!(lab.fault_fired(), "fault {f} never fired");
        assert!(lab.vip_at(on), "fault {f}");
        lab.check_extras(&f);
        lab.clear_faults();
        lab.agent(on, "stop", &p).run().ok();
        on = 3 - on;
    }
});

// resource-agents' ocf-tester against the installed agent on VM 2, with the public IP.
cloudtest!(ocf_tester_passes, |lab| {
    let agent = crate::util::install_agent();
    let mut cmd = Command::new("ip");
    let name = format!("{}vip", lab.cloud());
    cmd.args(["netns", "exec", lab.lab.ns(2), "ocf-tester", "-n", &name]);
    let mut params = vec![format!("ip={}", lab.vip()), "nic=eth0".into()];
    params.extend(lab.tester_params());
    for p in params {
        cmd.args(["-o", &p]);
    }
    cmd.arg(&agent);
    let r = Run::from(format!("ocf-tester {}", lab.cloud()), cmd.output().unwrap());
    assert!(
        r.code == 0 && r.stdout.contains("passed all tests"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(lab.vip_at(2));
});
