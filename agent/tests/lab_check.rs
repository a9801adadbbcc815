//! `o365probe check --json` in every lab scenario: each office's findings are exactly the ones its
//! scenario file expects, no more and no fewer, and the numbers behind them are the lab's ground truth
//! (the front door the resolver's GeoDNS picks, the egress and resolver addresses the lab assigned).
//!
//! Needs root (network namespaces); without it every test says why and passes.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use o365probe_core::assess::FindingCode;
use o365probe_lab::{Lab, Office, Scenario};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_o365probe");

/// One lab with every scenario's office, shared by the tests of this file, and each office's check,
/// run once, all at the same time (as 500 routers would).
struct Checked {
    lab: Lab,
    outputs: Vec<Output>,
}

fn checked() -> Option<&'static Checked> {
    static CHECKED: OnceLock<Option<Checked>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if let Some(why) = o365probe_lab::unavailable() {
                eprintln!("skipping the lab checks: {why}");
                return None;
            }
            let lab = Lab::up(&Scenario::all().expect("scenario files")).expect("lab up");
            let children: Vec<_> = lab
                .offices()
                .iter()
                .map(|o| {
                    check_command(o, &["--json"])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .expect("start o365probe")
                })
                .collect();
            let outputs = children
                .into_iter()
                .map(|c| c.wait_with_output().expect("o365probe ran"))
                .collect();
            Some(Checked { lab, outputs })
        })
        .as_ref()
}

fn check_command(office: &Office, extra: &[&str]) -> Command {
    let mut cmd = office.command(AGENT);
    cmd.arg("check")
        .args(extra)
        .arg("--config")
        .arg(office.agent_config_path());
    cmd
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn codes(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .expect("findings[]")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

fn target<'a>(report: &'a Value, host_suffix: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .expect("targets[]")
        .iter()
        .find(|t| t["host"].as_str().is_some_and(|h| h.ends_with(host_suffix)))
        .unwrap_or_else(|| panic!("no target *{host_suffix}"))
}

fn by_office<'a>(c: &'a Checked, name: &str) -> (&'a Office, &'a Output) {
    let i = c
        .lab
        .offices()
        .iter()
        .position(|o| o.name() == name)
        .unwrap_or_else(|| panic!("no office {name}"));
    (&c.lab.offices()[i], &c.outputs[i])
}

#[test]
fn every_scenario_finds_exactly_what_it_should() {
    let Some(c) = checked() else { return };
    let mut wrong = Vec::new();
    for (office, out) in c.lab.offices().iter().zip(&c.outputs) {
        assert_eq!(out.status.code(), Some(0), "{}: {:?}", office.name(), out);
        let report = json(out);
        let got = codes(&report);
        let want: BTreeSet<String> = office
            .expected_findings()
            .iter()
            .map(|f| f.code().to_owned())
            .collect();
        if got != want {
            wrong.push(format!(
                "{} ({}): expected {want:?}, found {got:?}\n  findings: {}",
                office.name(),
                office.scenario(),
                serde_json::to_string(&report["findings"]).unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_good_office_measures_the_lab_as_it_is_built() {
    let Some(c) = checked() else { return };
    let (office, out) = by_office(c, "london-good");
    let report = json(out);
    // The London resolver's clients get the London front door, by Microsoft's CNAME chain.
    let exchange = target(&report, "outlook.office365.com");
    assert_eq!(exchange["front_door"]["code"], "LHR");
    let cnames = exchange["dns"]["cnames"].as_array().unwrap();
    assert!(
        cnames
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("LHR-efz.ms-acdc.office.com"),
        "{cnames:?}"
    );
    // No false inspection finding on the genuine chain, for either TLS target.
    for host in ["outlook.office365.com", ".sharepoint.com"] {
        let tls = &target(&report, host)["tls"];
        assert_eq!(tls["verdict"], "genuine", "{host}: {tls}");
        assert_eq!(tls["issuer"], "Microsoft Azure RSA TLS Issuing CA 03");
    }
    // The addresses the lab gave the office's egress and its resolver's sending side.
    assert_eq!(report["egress"]["address"], office.egress().v4.to_string());
    assert_eq!(
        report["resolver"]["address"],
        office.resolver().egress_v4.to_string()
    );
    // The relay adds ~2 ms to LHR: the TCP median is in the same millisecond range, not 100 ms.
    let median = exchange["tcp"]["median_ms"].as_f64().unwrap();
    let configured = office.configured_rtt_ms(
        exchange["tcp"]["address"]
            .as_str()
            .unwrap()
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .ip(),
    );
    assert!(
        median >= configured && median < configured + 20.0,
        "median {median} ms, relay {configured} ms"
    );
    let stun = &target(&report, "world.tr.teams.microsoft.com")["stun"];
    assert_eq!(stun["sent"], 750);
    assert_eq!(stun["lost"], 0);
    assert_eq!(report["scores"]["exchange"], 100);
}

/// The loss a person reads is the train's lost over sent, in every office (the lossy ones too).
#[test]
fn teams_loss_is_what_the_train_lost() {
    let Some(c) = checked() else { return };
    let mut trains = 0;
    for (office, out) in c.lab.offices().iter().zip(&c.outputs) {
        let report = json(out);
        for t in report["targets"].as_array().expect("targets[]") {
            let stun = &t["stun"];
            let (Some(sent), Some(lost)) = (stun["sent"].as_f64(), stun["lost"].as_f64()) else {
                continue;
            };
            if sent == 0.0 {
                continue;
            }
            trains += 1;
            let shown = stun["loss_percent"].as_f64().expect("loss_percent");
            let want = 100.0 * lost / sent;
            assert!(
                (shown - want).abs() < 0.001,
                "{}: {shown} % shown, {lost} of {sent} lost",
                office.name()
            );
        }
    }
    assert!(trains >= c.lab.offices().len(), "{trains} STUN trains");
}

#[test]
fn tls_inspection_names_the_middlebox_and_fails_the_run_when_asked() {
    let Some(c) = checked() else { return };
    let (office, out) = by_office(c, "amsterdam-tls");
    let report = json(out);
    let tls = &target(&report, "outlook.office365.com")["tls"];
    assert_eq!(tls["verdict"], "intercepted");
    assert_eq!(tls["issuer"], "Contoso Web Filter CA");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "tls-inspection")
        .unwrap();
    assert_eq!(finding["severity"], "error");
    assert!(
        finding["detail"]
            .as_str()
            .unwrap()
            .contains("Contoso Web Filter CA"),
        "{finding}"
    );
    // --fail-on error turns an error finding into exit code 1; a clean office still exits 0.
    let strict = check_command(office, &["--json", "--fail-on", "error"])
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    let (good, _) = by_office(c, "london-good");
    let clean = check_command(good, &["--fail-on", "warning"])
        .output()
        .unwrap();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
}

#[test]
fn the_human_report_fits_80_columns_and_says_what_to_change() {
    let Some(c) = checked() else { return };
    let (office, _) = by_office(c, "singapore-backhaul");
    let out = check_command(office, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    for want in [
        "Egress",
        "Resolver",
        "Front door  LHR",
        "backhaul",
        "-> give the office local internet egress",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn a_bad_config_is_one_line_naming_file_key_and_problem_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("o365probe-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        "[[target]]\nhost = \"outlook.office365.com\"\nservice = \"mail\"\ntcp = [443]\n",
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{}: target[0].service: ", file.display())),
        "{err}"
    );
    assert!(err.contains("\"mail\""), "{err}");
}

#[test]
fn offline_check_says_what_failed_and_ends() {
    if not_root() {
        eprintln!("skipping offline_check_says_what_failed_and_ends: needs root for unshare -n");
        return;
    }
    let dir = std::env::temp_dir().join(format!("o365probe-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[agent]\nstate_dir = \"{}\"\n[dns]\nresolver = \"198.51.100.53\"\ntimeout = \"500ms\"\ntries = 2\n\
             [[target]]\nhost = \"outlook.office365.com\"\nservice = \"exchange\"\ncategory = \"optimize\"\ntcp = [443]\n",
            dir.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    // A network namespace of its own: not even loopback is up, as on a router whose WAN is down.
    let out = Command::new("unshare")
        .args(["-n", AGENT, "check", "--json", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let took = started.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let report = json(&out);
    let dns = &target(&report, "outlook.office365.com")["dns"];
    let error = dns["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unreachable") || error.contains("timeout"),
        "{dns}"
    );
    assert!(
        codes(&report).contains("dns-failure"),
        "{}",
        report["findings"]
    );
}

fn not_root() -> bool {
    // Reading /proc avoids unsafe: the effective uid is the second field of "Uid:".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u != "0"))
        })
        .unwrap_or(true)
}

#[test]
fn every_json_field_is_documented() {
    let Some(c) = checked() else { return };
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/check-json.md"
    ))
    .unwrap();
    fn keys(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    out.insert(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
            _ => {}
        }
    }
    let mut all = BTreeSet::new();
    for out in &c.outputs {
        keys(&json(out), &mut all);
    }
    let undocumented: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")) && !doc.contains(&format!("`{k}[]`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "fields missing from docs/check-json.md: {undocumented:?}"
    );
}

/// Scripts and alert rules match on finding codes: each one the agent can report has its row in
/// docs/check-json.md, with the severity it is reported at.
#[test]
fn every_finding_code_is_documented_with_its_severity() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/check-json.md"
    ))
    .unwrap();
    let missing: Vec<String> = FindingCode::ALL
        .iter()
        .map(|c| format!("| `{}` | {} |", c.code(), c.severity()))
        .filter(|row| !doc.contains(row.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "rows missing from docs/check-json.md: {missing:?}"
    );
}

/// A figure for `cargo xtask bench`, not a check: the agent's peak resident memory during a whole check
/// of the good office (GNU time's maximum RSS), printed as `agent: peak RSS of a check: N kB`.
#[test]
#[ignore = "a figure, run by cargo xtask bench"]
fn peak_memory_of_a_check() {
    let Some(c) = checked() else { return };
    let (office, _) = by_office(c, "london-good");
    let out = office
        .command("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(AGENT)
        .args(["check", "--json", "--config"])
        .arg(office.agent_config_path())
        .output()
        .expect("/usr/bin/time (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    println!("agent: peak RSS of a check: {kb} kB");
}
