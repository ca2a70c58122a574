//! Bad input, one row each: the exit code Pacemaker gets and the words of the exit reason
//! an admin reads in `pcs status`. Syntax errors are found by validate-all at depth 0
//! (no host access, as pcs runs it); host errors by start and validate-all at depth 10.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;

use crate::netns::Lab;
use crate::util::Agent;

const VIP: &str = "10.66.0.100";

type Params = &'static [(&'static str, &'static str)];

/// (parameters, expected code, words the exit reason must contain)
const SYNTAX: &[(Params, i32, &str)] = &[
    (&[], 6, "required parameter ip is not set"),
    (&[("ip", "")], 6, "required parameter ip is not set"),
    (
        &[("ip", "10.0.0.300")],
        6,
        "invalid ip=\"10.0.0.300\": not an IPv4 or IPv6 address",
    ),
    (
        &[("ip", "vip.example.com")],
        6,
        "not an IPv4 or IPv6 address",
    ),
    (&[("ip", "10.0.0.5/24")], 6, "prefix length in cidr_netmask"),
    (&[("ip", "127.0.0.5")], 6, "loopback"),
    (&[("ip", "224.0.0.5")], 6, "multicast"),
    (&[("ip", "0.0.0.0")], 6, "0.0.0.0/8"),
    (&[("ip", "255.255.255.255")], 6, "broadcast"),
    (&[("ip", "169.254.169.254")], 6, "link-local"),
    (&[("ip", "fe80::5")], 6, "link-local"),
    (&[("ip", "ff02::1")], 6, "multicast"),
    (&[("ip", "::ffff:10.0.0.5")], 6, "IPv4-mapped"),
    (&[("ip", "::1")], 6, "loopback"),
    (&[("ip", VIP), ("cidr_netmask", "33")], 6, "must be 1-32"),
    (&[("ip", VIP), ("cidr_netmask", "0")], 6, "must be 1-32"),
    (
        &[("ip", VIP), ("cidr_netmask", "abc")],
        6,
        "expected a prefix length 1-32",
    ),
    (
        &[("ip", VIP), ("cidr_netmask", "255.0.255.0")],
        6,
        "not contiguous",
    ),
    (
        &[("ip", "fd00:66::100"), ("cidr_netmask", "255.255.255.0")],
        6,
        "IPv6 VIP takes a prefix length 1-128",
    ),
    (
        &[("ip", "fd00:66::100"), ("cidr_netmask", "129")],
        6,
        "must be 1-128",
    ),
    (
        &[("ip", "10.66.0.0"), ("cidr_netmask", "24")],
        6,
        "network address of 10.66.0.0/24",
    ),
    (
        &[("ip", "10.66.0.255"), ("cidr_netmask", "24")],
        6,
        "broadcast address of 10.66.0.255/24",
    ),
    // Every registered backend is allowed, named in the registry's order.
    (
        &[("ip", VIP), ("cloud", "nimbus")],
        6,
        "invalid cloud=\"nimbus\": allowed values are gce, oci, ",
    ),
    (
        &[("ip", VIP), ("local_mode", "alias")],
        6,
        "allowed values are address, route, none",
    ),
    (
        &[("ip", VIP), ("cloud", "none"), ("local_mode", "none")],
        6,
        "manages nothing",
    ),
    (
        &[
            ("ip", "fd00:66::100"),
            ("cloud", "none"),
            ("local_mode", "route"),
        ],
        6,
        "local_mode=route with an IPv6 VIP needs a cloud",
    ),
    (
        &[("ip", VIP), ("nic", "eth0:1")],
        6,
        "put the alias part in label",
    ),
    (
        &[("ip", VIP), ("nic", "averyveryverylongname")],
        6,
        "1-15 characters",
    ),
    (
        &[("ip", "fd00:66::100"), ("label", "vip")],
        6,
        "labels exist for IPv4 addresses only",
    ),
    (&[("ip", VIP), ("label", "a b")], 6, "without ':' or spaces"),
    (
        &[("ip", VIP), ("nic", "enp0s31f6"), ("label", "verylong")],
        6,
        "longer than 15 characters",
    ),
    (
        &[("ip", VIP), ("arp_count", "101")],
        6,
        "expected an integer 0-100",
    ),
    (
        &[("ip", VIP), ("arp_count", "-1")],
        6,
        "expected an integer 0-100",
    ),
    (
        &[("ip", VIP), ("arp_interval", "0")],
        6,
        "expected an integer 1-10000",
    ),
    (
        &[("ip", VIP), ("arp_bg", "maybe")],
        6,
        "expected true or false",
    ),
    (
        &[("ip", VIP), ("cidr_netmaks", "24")],
        6,
        "unknown parameter \"cidr_netmaks\" (did you mean cidr_netmask?)",
    ),
    (
        &[("ip", VIP), ("instance_zone", "europe-west1-b")],
        6,
        "known parameters: ip, cidr_netmask",
    ),
    // A parameter set where it does not apply: refused, naming where it does.
    (
        &[("ip", VIP), ("cloud", "none"), ("alias_range_name", "vips")],
        6,
        "alias_range_name= applies to cloud=gce only",
    ),
    (
        &[("ip", VIP), ("cloud", "oci"), ("peers", "node-a")],
        6,
        "peers= applies to cloud=gce only",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "oci"),
            ("public_ip", "203.0.113.10"),
            ("restore_ephemeral_ip", "true"),
        ],
        6,
        "restore_ephemeral_ip= applies to cloud=gce only",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "gce"),
            ("vnic_id", "ocid1.vnic.oc1.iad.abcd"),
        ],
        6,
        "vnic_id= applies to cloud=oci only",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "none"),
            ("public_ip", "203.0.113.10"),
        ],
        6,
        "public_ip= applies to a cloud backend only, not cloud=none",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "none"),
            ("proxy", "http://proxy:3128"),
        ],
        6,
        "proxy= applies to a cloud backend only, not cloud=none",
    ),
    // Every backend's syntax is checked whatever the cloud (cloud=auto resolves late).
    (
        &[("ip", VIP), ("cloud", "gce"), ("vnic_id", "bad")],
        6,
        "invalid vnic_id=\"bad\": a VNIC OCID",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("mode", "leader")],
        6,
        "invalid mode=\"leader\": allowed values are alias, fim, probe, secondary_ip",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("mode", "secondary_ip")],
        6,
        "invalid mode=\"secondary_ip\": allowed values for cloud=gce are alias, fim, probe",
    ),
    (
        &[("ip", VIP), ("cloud", "none"), ("mode", "alias")],
        6,
        "mode= applies to a cloud backend only, not cloud=none",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("alias_range_name", "Vips")],
        6,
        "invalid alias_range_name=\"Vips\": a GCE name",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("peers", "node-a,node_b")],
        6,
        "\"node_b\" is not an instance name",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("peer_label", "cluster")],
        6,
        "expected key=value",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("public_ip", "34.1.2.3.4")],
        6,
        "an IPv4 address, a GCE address name or an OCI public IP OCID",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "gce"),
            ("api_endpoint", "http://10.0.0.1/compute/v1/"),
        ],
        6,
        "plain http:// only to a loopback address",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("credentials", "sa.json")],
        6,
        "invalid credentials=\"sa.json\": an absolute path",
    ),
    (
        &[("ip", VIP), ("cloud", "gce"), ("proxy", "proxy:3128")],
        6,
        "an http:// or https:// URL",
    ),
    (
        &[
            ("ip", VIP),
            ("cloud", "oci"),
            ("api_endpoint", "https://10.0.0.1:99999/"),
        ],
        6,
        "the port must be 1-65535",
    ),
];

#[test]
fn syntax_errors_are_configuration_errors() {
    assert!(SYNTAX.len() >= 20);
    for (params, code, reason) in SYNTAX {
        for action in ["validate-all", "start", "monitor"] {
            Agent::new(action)
                .params(params)
                .run()
                .expect(*code, Some(reason));
        }
    }
}

#[test]
fn stop_with_bad_parameters_succeeds() {
    // A failed stop gets the node fenced; nothing can run with a configuration that
    // never validated.
    for (params, _, _) in SYNTAX {
        Agent::new("stop").params(params).run().ok();
    }
}

#[test]
fn non_utf8_input_is_a_clear_error_never_a_panic() {
    let bad = OsStr::from_bytes(b"eth\xff0");
    let ok = [("ip", VIP), ("cloud", "none")];
    // Variables we do not use are none of our business, whatever their bytes.
    let r = Agent::new("validate-all")
        .params(&ok)
        .env_os(OsStr::new("JUNK"), bad)
        .env_os(bad, OsStr::new("x"))
        .env_os(OsStr::new("HA_LOGFILE"), bad)
        .run();
    r.ok();
    Agent::new("meta-data")
        .env_os(OsStr::new("OCF_RESKEY_nic"), bad)
        .run()
        .ok();
    // A parameter of ours: a configuration error that names it.
    for action in ["validate-all", "start", "monitor"] {
        Agent::new(action)
            .params(&ok)
            .env_os(OsStr::new("OCF_RESKEY_nic"), bad)
            .run()
            .expect(6, Some("parameter nic is not valid UTF-8"));
    }
    Agent::new("validate-all")
        .params(&ok)
        .env_os(OsStr::from_bytes(b"OCF_RESKEY_l\xffbel"), OsStr::new("vip"))
        .run()
        .expect(6, Some("is not valid UTF-8"));
    // The same from --param and --config.
    Agent::new("validate-all")
        .arg("--param")
        .arg(OsStr::from_bytes(b"ip=10.66.0.\xff"))
        .run()
        .expect(6, Some("parameter ip is not valid UTF-8"));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vip.conf");
    std::fs::write(&conf, b"ip=10.66.0.100\ncloud=none\nlabel=v\xff\n").unwrap();
    Agent::new("validate-all")
        .arg("--config")
        .arg(&conf)
        .run()
        .expect(6, Some("parameter label is not valid UTF-8"));
    // An action name that is not UTF-8 is just an unknown action.
    Agent::new("start")
        .action_os(OsStr::from_bytes(b"st\xffrt"))
        .run()
        .expect(3, Some("unsupported action"));
}

#[test]
fn validate_all_depth_0_is_quiet_and_local() {
    // nic=eth9 does not exist anywhere, and depth 0 must not look.
    let r = Agent::new("validate-all")
        .params(&[("ip", VIP), ("nic", "eth9"), ("cloud", "none")])
        .run();
    r.ok();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("", ""),
        "validate-all must be quiet"
    );
}

#[test]
fn host_errors_are_local_to_the_node() {
    let lab = Lab::new(1);
    let ns = lab.ns(1);
    // (parameters, actions, expected code, words of the exit reason)
    let rows: &[(Params, &[&str], i32, &str)] = &[
        // The nic may exist on the other nodes: OCF_ERR_ARGS bans only this one.
        (
            &[("ip", VIP), ("nic", "eth9"), ("cloud", "none")],
            &["start", "validate-all"],
            2,
            "nic=eth9 does not exist on this node (interfaces: lo, eth0)",
        ),
        (
            &[("ip", "10.99.0.5"), ("cloud", "none")],
            &["start", "validate-all"],
            2,
            "no route towards 10.99.0.5 in the main table",
        ),
        (
            &[("ip", "fd00:99::5"), ("cloud", "none")],
            &["start"],
            2,
            "no route towards fd00:99::5",
        ),
        // an unreadable CA bundle is this node's installation problem
        (
            &[
                ("ip", VIP),
                ("cloud", "gce"),
                ("ca_bundle", "/nonexistent/ca.pem"),
            ],
            &["start", "validate-all"],
            5,
            "cannot read ca_bundle /nonexistent/ca.pem",
        ),
        (
            &[
                ("ip", VIP),
                ("cloud", "oci"),
                ("ca_bundle", "/nonexistent/ca.pem"),
            ],
            &["start"],
            5,
            "cannot read ca_bundle /nonexistent/ca.pem",
        ),
    ];
    for (params, actions, code, reason) in rows {
        for action in *actions {
            Agent::new(action)
                .params(params)
                .env("OCF_CHECK_LEVEL", "10")
                .netns(ns)
                .run()
                .expect(*code, Some(reason));
        }
    }
    // Nothing was added by the failed starts.
    assert!(!lab.addrs(1).contains("10.66.0.100"), "{}", lab.addrs(1));
}

/// cloud=auto is resolved on the node: validate-all at depth 0 cannot know the cloud and
/// accepts another cloud's parameter; start refuses it once the cloud is known, before
/// anything changes, whatever this host turns out to be.
#[test]
fn a_parameter_of_another_cloud_is_refused_once_auto_resolves() {
    let lab = Lab::new(1);
    let dmi =
        |f: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{f}")).unwrap_or_default();
    let google = dmi("sys_vendor").trim() == "Google"
        || dmi("product_name").trim() == "Google Compute Engine";
    // A parameter of a cloud this host is not.
    let (param, reason) = if google {
        (
            ("vnic_id", "ocid1.vnic.oc1.iad.abcd"),
            "vnic_id= applies to cloud=oci only",
        )
    } else {
        (("peers", "node-a"), "peers= applies to cloud=gce only")
    };
    let params = [("ip", VIP), ("cloud", "auto"), param];
    Agent::new("validate-all").params(&params).run().ok();
    for action in ["start", "validate-all"] {
        Agent::new(action)
            .params(&params)
            .env("OCF_CHECK_LEVEL", "10")
            .netns(lab.ns(1))
            .run()
            .expect(6, Some(reason));
    }
    assert!(!lab.addrs(1).contains(VIP), "{}", lab.addrs(1));
}

#[test]
fn unprivileged_start_is_a_permission_error() {
    let lab = Lab::new(1);
    // setpriv drops to nobody inside the namespace: netlink refuses the change.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.ns(1),
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::util::BIN,
            "start",
        ])
        .env("OCF_RESKEY_ip", VIP)
        .env("OCF_RESKEY_nic", "eth0")
        .env("OCF_RESKEY_cloud", "none")
        .output()
        .unwrap();
    let r = crate::util::Run::from("start as nobody".into(), out);
    r.expect(4, Some("needs CAP_NET_ADMIN"));
}
