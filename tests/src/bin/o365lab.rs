//! `o365lab up|down|status|list`: bring lab scenarios up by hand, find and remove labs.
//!
//! `up` stays in the foreground, prints what it built and how to look inside, and tears everything
//! down on Ctrl-C (or when `o365lab down` removes it from another terminal).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use o365probe_lab::{down_all, lab::PREFIX, status, Lab, LabOptions, Scenario};

const USAGE: &str = "\
usage: o365lab <command>
  up [--scenario NAME]... [--relay-log]   bring up scenarios (default: all) until Ctrl-C
  down [--prefix PREFIX]                  remove labs (default: every o365lab-* namespace)
  status                                  list labs, their namespaces and processes
  list                                    list scenarios and the findings they expect
  demo --agent PATH [--scenario NAME]... [--keep]
                                          bring up scenarios, run `PATH check` in every office at
                                          once, show what each found against what it should find
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "up" => up(rest),
        "down" => down(rest),
        "status" => show_status(),
        "list" => list(),
        "demo" => demo(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn up(args: &[String]) -> Result<()> {
    let mut names = Vec::new();
    let mut options = LabOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scenario" => names.push(it.next().context("--scenario needs a name")?.clone()),
            "--relay-log" => options.relay_log = true,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let scenarios = scenarios(&names)?;
    let lab = Lab::up_with(&scenarios, &options)?;
    println!("{}", lab.describe());
    println!("Ctrl-C tears the lab down.");
    // Ctrl-C is handled by the library (it tears down and exits); this loop only notices a lab that
    // `o365lab down` removed from elsewhere, or a peer that died.
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if !lab.healthy() || lab.internet().pids().is_empty() {
            eprintln!("o365lab: the lab lost a process or was removed; tearing down the rest");
            for problem in lab.down() {
                eprintln!("o365lab: {problem}");
            }
            std::process::exit(1);
        }
    }
}

/// The quick start's demo: every scenario's office assessed by the real agent, side by side.
fn demo(args: &[String]) -> Result<()> {
    let mut names = Vec::new();
    let mut agent = None;
    let mut keep = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scenario" => names.push(it.next().context("--scenario needs a name")?.clone()),
            "--agent" => {
                agent = Some(
                    it.next()
                        .context("--agent needs the o365probe binary")?
                        .clone(),
                )
            }
            "--keep" => keep = true,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let agent = agent.context("demo needs --agent PATH (cargo xtask demo passes it)")?;
    let scenarios = scenarios(&names)?;
    println!(
        "Bringing up the lab: {} offices, each behind its own WAN relay ...",
        scenarios.iter().map(|s| s.offices.len()).sum::<usize>()
    );
    let lab = Lab::up(&scenarios)?;
    println!("Up in {:.1} s. Running `o365probe check --json` in every office at once (a 15 s Teams train each) ...\n", lab.startup().as_secs_f64());
    let children: Vec<_> = lab
        .offices()
        .iter()
        .map(|o| {
            o.command(&agent)
                .args(["check", "--json", "--config"])
                .arg(o.agent_config_path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot start {agent}"))
        })
        .collect::<Result<_>>()?;
    let mut mismatches = 0;
    println!(
        "{:<20} {:<11} {:<6} {:>7} {:<12} {:>6} {:>5}  findings [ok: what the scenario expects]",
        "office", "city", "front", "tcp ms", "tls", "loss%", "MOS"
    );
    for (office, child) in lab.offices().iter().zip(children) {
        let out = child.wait_with_output()?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{}: no JSON from the agent: {}",
                office.name(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let targets = report["targets"].as_array().cloned().unwrap_or_default();
        let exchange = targets.iter().find(|t| t["service"] == "exchange");
        let teams = targets.iter().find(|t| t["service"] == "teams");
        let front = exchange
            .and_then(|t| t["front_door"]["code"].as_str())
            .unwrap_or("-");
        let tcp = exchange
            .and_then(|t| t["tcp"]["median_ms"].as_f64())
            .map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let tls = exchange
            .and_then(|t| t["tls"]["verdict"].as_str())
            .unwrap_or("-");
        let loss = teams
            .and_then(|t| t["stun"]["loss_percent"].as_f64())
            .filter(|_| teams.is_some_and(|t| t["stun"]["received"].as_u64() > Some(0)))
            .map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let mos = teams
            .and_then(|t| t["stun"]["mos"].as_f64())
            .map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        let found: std::collections::BTreeSet<String> = report["findings"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|f| f["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let expected: std::collections::BTreeSet<String> = office
            .expected_findings()
            .iter()
            .map(|f| f.code().to_owned())
            .collect();
        let shown = if found.is_empty() {
            "none".to_owned()
        } else {
            found.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        let verdict = if found == expected {
            "ok"
        } else {
            mismatches += 1;
            "MISMATCH"
        };
        println!(
            "{:<20} {:<11} {:<6} {:>7} {:<12} {:>6} {:>5}  {shown} [{verdict}]",
            office.name(),
            office.spec().city,
            front,
            tcp,
            tls,
            loss,
            mos
        );
        if found != expected {
            println!(
                "{:<20} expected: {}",
                "",
                expected.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    println!(
        "\nEach office's full report: ip netns exec <namespace> {agent} check --config <config> (add --keep to \
         keep the lab up; `o365lab status` lists namespaces)."
    );
    if keep {
        println!("{}", lab.describe());
        println!("The lab stays up; Ctrl-C tears it down.");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    drop(lab);
    if mismatches > 0 {
        bail!("{mismatches} office(s) did not find what their scenario expects");
    }
    Ok(())
}

/// The scenarios named by `--scenario`, or all of them.
fn scenarios(names: &[String]) -> Result<Vec<Scenario>> {
    if names.is_empty() {
        return Ok(Scenario::all()?);
    }
    Ok(names
        .iter()
        .map(|n| Scenario::load(n))
        .collect::<Result<_, _>>()?)
}

fn down(args: &[String]) -> Result<()> {
    let prefix = match args {
        [] => PREFIX.to_owned(),
        [flag, p] if flag == "--prefix" => p.clone(),
        _ => bail!("{USAGE}"),
    };
    let removed = down_all(&prefix)?;
    if removed.is_empty() {
        println!("no lab namespaces matching {prefix}*");
    }
    for name in removed {
        println!("removed {name}");
    }
    Ok(())
}

fn show_status() -> Result<()> {
    let labs = status()?;
    if labs.is_empty() {
        println!("no labs");
    }
    for lab in labs {
        let owner = if lab.owner_alive {
            "running"
        } else {
            "owner gone: `o365lab down` or the next lab start removes it"
        };
        println!("{} ({owner})", lab.prefix);
        for (ns, procs) in lab.namespaces {
            let procs: Vec<String> = procs.iter().map(|(p, c)| format!("{c}[{p}]")).collect();
            println!("  {ns}: {}", procs.join(" "));
        }
    }
    Ok(())
}

fn list() -> Result<()> {
    for s in Scenario::all()? {
        println!("{}: {}", s.name, s.description);
        for o in &s.offices {
            let expect: Vec<&str> = o.expect.iter().map(|f| f.code()).collect();
            println!(
                "  office {} ({}): expects [{}]",
                o.name,
                o.city,
                expect.join(", ")
            );
        }
    }
    Ok(())
}
