//! The meta-data is a contract with Pacemaker, pcs and ocf-tester: it must stay valid
//! against resource-agents' DTD and RNG, and change only on purpose (golden file).

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
fn valid_against_resource_agents_rng() {
    let (ok, err) = xmllint(&["--noout", "--relaxng", "metadata.rng", "-"], &meta_data());
    assert!(ok, "RNG validation failed:\n{err}");
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
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("<parameter name=\"ip\" unique=\"1\" required=\"1\">"));
}

#[test]
fn unknown_and_missing_actions_are_unimplemented() {
    for action in [
        "bogus",
        "promote",
        "demote",
        "notify",
        "reload-agent",
        "status",
    ] {
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
