//! Every script in `pcs-examples/` runs with stand-ins for `pcs`, `gcloud` and `oci` first
//! in PATH that record their arguments; each recorded `pcs resource create ...
//! ocf:rust:cloudvip` then goes through `crm_resource --validate` (what pcs itself runs)
//! against the built agent in a private OCF root, constraints must name resources the script created, and
//! the IAM/policy scripts must grant what the README and `diagnose` say is needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{install_agent, Run};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcs-examples");
const SEP: char = '\u{1f}';

fn scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    v.sort();
    assert!(v.len() >= 8, "pcs-examples/ lost scripts: {v:?}");
    v
}

/// Run `script` with recording stand-ins; the commands it ran, split into arguments.
fn run(script: &Path, args: &[&str]) -> Vec<Vec<String>> {
    run_out(script, args).0
}

/// [`run`], and what the script printed.
fn run_out(script: &Path, args: &[&str]) -> (Vec<Vec<String>>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("record");
    for tool in ["pcs", "gcloud", "oci"] {
        let p = tmp.path().join(tool);
        std::fs::write(
            &p,
            format!(
                "#!/bin/bash\n(IFS=$'{SEP}'; printf '%s\\n' \"{tool}{SEP}$*\") >> \"$RECORD\"\n"
            ),
        )
        .unwrap();
        crate::util::sh(&["chmod", "0755", p.to_str().unwrap()]);
    }
    let path = format!(
        "{}:{}",
        tmp.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("PATH", path)
        .env("RECORD", &record)
        .output()
        .unwrap();
    let r = Run::from(format!("{}", script.display()), out);
    assert_eq!(r.code, 0, "{} failed:\n{}\n{}", r.what, r.stdout, r.stderr);
    let cmds = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(SEP).map(str::to_owned).collect())
        .collect();
    (cmds, r.stdout)
}

/// The instance parameters of a `pcs resource create NAME ocf:rust:cloudvip k=v ... op ...`.
fn create_params(cmd: &[String]) -> Option<(String, Vec<String>)> {
    if cmd.get(..3)? != ["pcs", "resource", "create"] || cmd.get(4)? != "ocf:rust:cloudvip" {
        return None;
    }
    let params = cmd[5..]
        .iter()
        .take_while(|a| {
            !matches!(a.as_str(), "op" | "meta" | "clone" | "promotable") && !a.starts_with("--")
        })
        .cloned()
        .collect();
    Some((cmd[3].clone(), params))
}

#[test]
fn every_resource_example_validates_with_crm_resource() {
    let root = install_agent();
    let mut creates = 0;
    for s in scripts() {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("iam") || name.contains("policy") {
            continue;
        }
        let cmds = run(&s, &[]);
        let mut created = Vec::new();
        for c in &cmds {
            assert_eq!(c[0], "pcs", "{name} runs {c:?}");
            if let Some((res, params)) = create_params(c) {
                assert!(
                    params.iter().any(|p| p.starts_with("ip=")),
                    "{name}: {params:?}"
                );
                let r = root.crm_validate(&params);
                assert_eq!(r.code, 0, "{name}: {}\n{}\n{}", r.what, r.stdout, r.stderr);
                created.push(res);
                creates += 1;
            } else if c[1] == "constraint" {
                // Every constraint names a resource the script created.
                assert!(
                    created.iter().any(|r| c.contains(r)),
                    "{name}: {c:?} names none of {created:?}"
                );
            } else {
                panic!("{name}: unexpected command {c:?}");
            }
        }
        assert!(!created.is_empty(), "{name} creates no cloudvip resource");
        if name == "vip-with-database.sh" {
            let flat: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
            assert!(
                flat.iter().any(|c| c
                    .starts_with("pcs constraint colocation add vip-db with Promoted pgsql-clone")),
                "{flat:?}"
            );
            assert!(
                flat.iter()
                    .any(|c| c
                        .starts_with("pcs constraint order promote pgsql-clone then start vip-db")),
                "{flat:?}"
            );
        }
        if name == "two-vips-one-nic.sh" {
            assert_eq!(created.len(), 2, "{created:?}");
        }
    }
    assert!(creates >= 7, "{creates}");
}

#[test]
fn a_broken_example_would_fail_validation() {
    // The check above can fail: a typo in a parameter name is refused by the agent.
    let root = install_agent();
    let r = root.crm_validate(&["ip=10.0.0.5", "cloud=gce", "peer_lable=cluster=db1"]);
    assert_eq!(r.code, 6, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn iam_and_policy_scripts_grant_what_the_agent_needs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let gce = run(Path::new(&format!("{DIR}/gce-iam.sh")), &["--public"]);
    let create = gce
        .iter()
        .find(|c| c.get(1..4) == Some(&["iam".into(), "roles".into(), "create".into()]))
        .unwrap_or_else(|| panic!("no role created: {gce:?}"));
    let perms = &create[create.iter().position(|a| a == "--permissions").unwrap() + 1];
    let perms: Vec<&str> = perms.split(',').collect();
    // Exactly the README's list (which diagnose repeats): none missing, none extra.
    for p in &perms {
        assert!(
            readme.contains(&format!("`{p}`")),
            "README does not list {p}"
        );
    }
    let listed = readme.matches("`compute.").count();
    assert!(perms.len() >= 12, "{perms:?}");
    assert!(
        listed >= perms.len(),
        "README lists {listed}, the role has {}",
        perms.len()
    );
    assert!(
        gce.iter()
            .any(|c| c.join(" ").contains("add-iam-policy-binding")),
        "{gce:?}"
    );
    let plain = run(Path::new(&format!("{DIR}/gce-iam.sh")), &[]);
    assert!(
        !plain
            .iter()
            .any(|c| c.join(" ").contains("compute.addresses.use")),
        "{plain:?}"
    );

    let oci = run(Path::new(&format!("{DIR}/oci-policy.sh")), &[]);
    let flat: Vec<String> = oci.iter().map(|c| c.join(" ")).collect();
    assert!(
        flat.iter().any(|c| c.contains("iam dynamic-group create")),
        "{flat:?}"
    );
    assert!(
        flat.iter().any(|c| c.contains("Allow dynamic-group cloudvip-nodes to use virtual-network-family")),
        "{flat:?}"
    );
    let key = run(Path::new(&format!("{DIR}/oci-policy.sh")), &["--api-key"]);
    let flat: Vec<String> = key.iter().map(|c| c.join(" ")).collect();
    assert!(
        !flat.iter().any(|c| c.contains("dynamic-group create")),
        "{flat:?}"
    );
    assert!(
        flat.iter()
            .any(|c| c.contains("Allow group cloudvip-nodes to use virtual-network-family")),
        "{flat:?}"
    );
}

/// Each AWS example prints the IAM policy its resource needs: exactly the agent's own
/// (`aws::inspect::policy`, what `diagnose` names), for the mode and parameters of the
/// `pcs resource create` it runs; with routing_table_role also the role's permissions
/// and a trust policy asking for its external_id.
#[test]
fn aws_examples_print_the_policy_of_their_mode() {
    use cloudvip::cloud::aws::{config::Config, inspect};
    let mut modes = Vec::new();
    for s in scripts() {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("aws-") {
            continue;
        }
        let (cmds, out) = run_out(&s, &[]);
        let (_, params) = cmds.iter().find_map(|c| create_params(c)).unwrap();
        let pairs: Vec<(&str, &str)> = params.iter().filter_map(|p| p.split_once('=')).collect();
        let ip = pairs.iter().find(|(k, _)| *k == "ip").unwrap().1;
        let cfg = Config::from_pairs(ip.parse().unwrap(), &pairs).unwrap();
        let json: String = out.lines().filter(|l| !l.starts_with('#')).collect();
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&json)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
        assert_eq!(docs.first(), Some(&inspect::policy(&cfg)), "{name}");
        match inspect::role_policy(&cfg) {
            None => assert_eq!(docs.len(), 1, "{name}"),
            Some(role) => {
                assert_eq!(docs.get(1), Some(&role), "{name}");
                let trust = &docs[2]["Statement"][0];
                assert_eq!(trust["Action"], "sts:AssumeRole", "{name}");
                assert_eq!(
                    trust["Condition"]["StringEquals"]["sts:ExternalId"].as_str(),
                    cfg.external_id.as_deref(),
                    "{name}"
                );
            }
        }
        modes.push((
            cfg.mode,
            cfg.eip.is_some(),
            cfg.routing_table_role.is_some(),
        ));
    }
    modes.sort_by_key(|m| format!("{m:?}"));
    modes.dedup();
    assert_eq!(
        modes.len(),
        5,
        "one example per mode and variant: {modes:?}"
    );
}
