//! `o365probe`: assess this office's path to Microsoft 365 now (`check`; the reporting daemon, `run`,
//! is not built yet). Parses arguments, loads the config, hands over to the library; exit codes are
//! documented in the README (0 ran, 1 findings at or above `--fail-on`, 2 usage or config error).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use o365probe::check::{self, model::Assessment, render};
use o365probe::config::{Config, ConfigError, ProxyEnv};
use o365probe_core::assess::{FindingCode, Severity};

const USAGE: &str = "\
usage: o365probe check [--config FILE] [--json] [--fail-on SEVERITY]
       o365probe --version

  check      assess the office's path to Microsoft 365 now, and print what is wrong
  --config   the config file (default /etc/o365probe/config.toml, or /etc/config/o365probe on OpenWrt)
  --json     print the assessment as JSON (schema: docs/check-json.md)
  --fail-on  exit 1 when a finding of this severity or worse exists (info, warning, error)
";

struct Args {
    command: String,
    config: Option<PathBuf>,
    json: bool,
    fail_on: Option<Severity>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args_os().skip(1);
    let mut out = Args {
        command: String::new(),
        config: None,
        json: false,
        fail_on: None,
    };
    while let Some(arg) = args.next() {
        let arg = arg.to_str().ok_or("arguments must be UTF-8")?.to_owned();
        match arg.as_str() {
            "--config" | "-c" => {
                out.config = Some(args.next().ok_or("--config needs a file")?.into());
            }
            "--json" => out.json = true,
            "--fail-on" => {
                let v = args.next().ok_or("--fail-on needs a severity")?;
                let v = v.to_str().unwrap_or("");
                out.fail_on = Some(Severity::from_name(v).ok_or_else(|| {
                    format!("--fail-on: unknown severity `{v}` (info, warning or error)")
                })?);
            }
            "--help" | "-h" => out.command = "help".into(),
            "--version" | "-V" => out.command = "version".into(),
            a if a.starts_with('-') => return Err(format!("unknown option `{a}`")),
            a if out.command.is_empty() => out.command = a.to_owned(),
            a => return Err(format!("unexpected argument `{a}`")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    // minreq reads proxy variables itself on every request; take them once, before any thread, so
    // that `[http] proxy` decides (and NO_PROXY is honoured).
    let proxy_env = ProxyEnv::take();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("o365probe: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "check" => check(&args, proxy_env),
        "version" => {
            println!("o365probe {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "" => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        other => {
            eprintln!("o365probe: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn load(args: &Args) -> Result<Config, ConfigError> {
    match &args.config {
        Some(path) => Config::load_any(path),
        None => Config::load_default(),
    }
}

fn check(args: &Args, proxy_env: ProxyEnv) -> ExitCode {
    let config = match load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("o365probe: {e}");
            return ExitCode::from(o365probe::config::EXIT_CODE as u8);
        }
    };
    // HTTPS checks trust the same roots the TLS verdict expects (a lab's own CA), unless the
    // environment already names a bundle. Set before any thread starts.
    if let Some(roots) = &config.tls.trusted_roots {
        if std::env::var_os("SSL_CERT_FILE").is_none() {
            std::env::set_var("SSL_CERT_FILE", roots);
        }
    }
    let context = match check::Context::new(&config, proxy_env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("o365probe: {e}");
            return ExitCode::from(2);
        }
    };
    let assessments = match context.run() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("o365probe: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        writeln!(out, "{}", json(&assessments))
    } else {
        let style = render::Style::new(
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        );
        assessments
            .iter()
            .try_for_each(|a| write!(out, "{}", render::render(a, style)))
    };
    if let Err(e) = printed.and_then(|()| out.flush()) {
        eprintln!("o365probe: cannot write the assessment: {e}");
        return ExitCode::from(2);
    }
    let worst = assessments
        .iter()
        .flat_map(|a| &a.findings)
        .filter_map(|f| FindingCode::from_code(&f.code))
        .map(FindingCode::severity)
        .max();
    match (args.fail_on, worst) {
        (Some(threshold), Some(w)) if w >= threshold => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// One uplink: its assessment. Several: the first at the top level (so scripts that read one office
/// keep working) and all of them in `uplinks`.
fn json(assessments: &[Assessment]) -> String {
    #[derive(serde::Serialize)]
    struct Output<'a> {
        #[serde(flatten)]
        first: &'a Assessment,
        #[serde(skip_serializing_if = "Option::is_none")]
        uplinks: Option<&'a [Assessment]>,
    }
    let output = Output {
        first: &assessments[0],
        uplinks: (assessments.len() > 1).then_some(assessments),
    };
    serde_json::to_string_pretty(&output).unwrap_or_default()
}
