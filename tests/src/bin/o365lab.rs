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
    let scenarios = if names.is_empty() {
        Scenario::all()?
    } else {
        names
            .iter()
            .map(|n| Scenario::load(n))
            .collect::<Result<Vec<_>, _>>()?
    };
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
