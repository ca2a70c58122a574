//! The meta-data is a contract with Pacemaker, pcs and ocf-tester: it must stay valid
//! against resource-agents' DTD (what ocf-tester checks) and pcs's OCF 1.1 schema (what pcs
//! checks before it reads an agent), and change only on purpose (golden file).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::Agent;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ocf/cloudvip.xml");
const SCHEMAS: &str = "/usr/share/resource-agents";

fn meta_data() -> String {
    let r = Agent::new("meta-data").run();
    r.ok();
    r.stdout
}

#[test]
fn matches_the_golden_file() {
    let xml = meta_data();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &xml).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    assert!(
        xml == golden,
        "meta-data differs from ocf/cloudvip.xml; if the change is intended run \
         UPDATE_GOLDEN=1 cargo test --test tests metadata and commit the file"
    );
}

fn xmllint(args: &[&str], xml: &str) -> (bool, String) {
    let mut child = Command::new("xmllint")
        .args(args)
        .current_dir(SCHEMAS)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("xmllint missing: apt-get install libxml2-utils");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_against_ra_api_1_dtd() {
    // exactly what ocf-tester does: xmllint --valid from the DTD's directory
    let (ok, err) = xmllint(&["--noout", "--valid", "-"], &meta_data());
    assert!(ok, "DTD validation failed:\n{err}");
}

#[test]
fn valid_against_pcs_ocf_1_1_rng() {
    // pcs validates meta-data claiming <version>1.1</version> against this schema and
    // calls an agent failing it "not installed or does not provide valid metadata".
    // (resource-agents' own metadata.rng is its lint for its OCF 1.0-style agents: it
    // has no unique-group, so it no longer applies.)
    let (ok, err) = xmllint(
        &[
            "--noout",
            "--relaxng",
            "/usr/share/pcs/data/ocf-1.1.rng",
            "-",
        ],
        &meta_data(),
    );
    assert!(ok, "pcs OCF 1.1 RNG validation failed:\n{err}");
}

#[test]
fn the_dtd_check_can_fail() {
    // The internal DTD subset declares unique-group, reloadable and reload-agent and
    // nothing else: an undeclared attribute or action still fails, so the DTD test above
    // means something.
    let xml = meta_data().replacen("required=\"1\"", "required=\"1\" advanced=\"1\"", 1);
    let (ok, err) = xmllint(&["--noout", "--valid", "-"], &xml);
    assert!(!ok && err.contains("advanced"), "{err}");
    let xml = meta_data().replacen("\"reload-agent\"", "\"reload-params\"", 1);
    let (ok, err) = xmllint(&["--noout", "--valid", "-"], &xml);
    assert!(!ok && err.contains("reload-params"), "{err}");
}

#[test]
fn reload_agent_is_advertised_with_the_reloadable_parameters() {
    // Pacemaker 2.1 uses reload-agent only for an OCF 1.1 agent that advertises it, and
    // restarts the resource for a change of any parameter not marked reloadable.
    let xml = meta_data();
    assert!(xml.contains("<version>1.1</version>"));
    assert!(
        xml.contains("<action name=\"reload-agent\" timeout=\"20s\"/>"),
        "{xml}"
    );
    let reloadable: Vec<&str> = xml
        .split("<parameter name=\"")
        .skip(1)
        .filter(|p| {
            p.split('>')
                .next()
                .unwrap_or("")
                .contains("reloadable=\"1\"")
        })
        .map(|p| p.split('"').next().unwrap())
        .collect();
    // The ones that neither place the VIP nor name the account and cloud holding it.
    assert_eq!(
        reloadable,
        [
            "arp_count",
            "arp_interval",
            "arp_bg",
            "peers",
            "peer_label",
            "access_config_name",
            "restore_ephemeral_ip",
            "proxy",
            "ca_bundle",
        ]
    );
}

#[test]
fn meta_data_needs_nothing() {
    // No environment at all, as pcs and crm_resource may call it.
    let out = Command::new(crate::util::BIN)
        .arg("meta-data")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    // unique-group for OCF 1.1 readers (pcs 0.11 reads only that), unique for 1.0 ones.
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("<parameter name=\"ip\" unique-group=\"ip\" unique=\"1\" required=\"1\">"));
}

#[test]
fn unknown_and_missing_actions_are_unimplemented() {
    for action in ["bogus", "promote", "demote", "notify", "status"] {
        Agent::new(action)
            .run()
            .expect(3, Some(&format!("unsupported action \"{action}\"")));
    }
    let out = Command::new(crate::util::BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn usage_lists_actions_and_exit_codes() {
    let r = Agent::new("usage").run();
    r.ok();
    for word in [
        "migrate_to",
        "validate-all",
        "7 OCF_NOT_RUNNING",
        "6 OCF_ERR_CONFIGURED",
    ] {
        assert!(r.stdout.contains(word), "usage lacks {word}:\n{}", r.stdout);
    }
}
