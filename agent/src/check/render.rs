//! The assessment for a person: what Microsoft's connectivity test shows, in an 80-column terminal,
//! with colour only when writing to a terminal.

use std::fmt::Write as _;

use super::model::{Assessment, Finding, Placed, TargetReport};

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when `colour` (a TTY, and `NO_COLOR` unset).
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }

    fn severity(&self, s: &str) -> String {
        let label = format!("{:<7}", s.to_ascii_uppercase());
        match s {
            "error" => self.paint("1;31", &label),
            "warning" => self.paint("1;33", &label),
            _ => self.paint("36", &label),
        }
    }

    fn good(&self, t: &str) -> String {
        self.paint("32", t)
    }

    fn bad(&self, t: &str) -> String {
        self.paint("31", t)
    }
}

/// Renders one assessment.
pub fn render(a: &Assessment, style: Style) -> String {
    let mut o = String::new();
    let place = a
        .office
        .location
        .map(|p| format!(" ({:.2}, {:.2})", p.lat, p.lon))
        .unwrap_or_default();
    let uplink = a
        .uplink
        .as_deref()
        .map(|u| format!(", uplink {u}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{}",
        style.bold(&format!(
            "o365probe check: {}{place}{uplink}",
            a.office.name
        ))
    );
    let _ = writeln!(o, "{} in {:.1} s\n", a.started, a.duration_ms / 1000.0);

    let egress = match a.egress.address {
        Some(addr) => format!("{addr}{}", placed(&a.egress.location)),
        None => "unknown (no STUN answer)".into(),
    };
    row(&mut o, "Egress", &egress);
    let queried = a
        .resolver
        .queried
        .map_or_else(|| "none".to_owned(), |r| r.ip().to_string());
    let resolver = match a.resolver.address {
        Some(addr) => format!(
            "{queried}, queries from {addr}{}",
            placed(&a.resolver.location)
        ),
        None => format!("{queried} (whoami names did not answer)"),
    };
    row(&mut o, "Resolver", &resolver);

    for t in &a.targets {
        target(&mut o, t, style);
    }

    if !a.split_tunnel.is_empty() {
        let tunneled: Vec<&str> = a
            .split_tunnel
            .iter()
            .filter(|p| p.tunnel.is_some())
            .map(|p| p.prefix.as_str())
            .collect();
        let text = if tunneled.is_empty() {
            format!(
                "{} Optimize destinations, none in a VPN tunnel",
                a.split_tunnel.len()
            )
        } else {
            format!("in a VPN tunnel: {}", tunneled.join(", "))
        };
        o.push('\n');
        row(&mut o, "Routes", &text);
    }
    if let Some(d) = &a.download {
        let text = match &d.error {
            Some(e) => format!("{}: {e}", d.url),
            None => format!(
                "{:.1} MB/s ({} bytes in {:.1} s), latency {} idle, {} loaded",
                d.mbytes_per_s.unwrap_or(0.0),
                d.bytes,
                d.duration_ms / 1000.0,
                opt_ms(d.idle_latency_ms),
                opt_ms(d.loaded_latency_ms)
            ),
        };
        row(&mut o, "Download", &text);
    }

    let score = |s: Option<u8>| s.map_or_else(|| "-".to_owned(), |v| v.to_string());
    o.push('\n');
    row(
        &mut o,
        "Scores",
        &format!(
            "Exchange {}  SharePoint {}  Teams {}",
            score(a.scores.exchange),
            score(a.scores.sharepoint),
            score(a.scores.teams)
        ),
    );

    o.push('\n');
    let _ = writeln!(o, "{}", style.bold("Findings"));
    if a.findings.is_empty() {
        let _ = writeln!(
            o,
            "  {}",
            style.good("none: the office reaches Microsoft 365 as it should")
        );
    }
    for f in &a.findings {
        finding(&mut o, f, style);
    }
    if !a.notes.is_empty() {
        o.push('\n');
        let _ = writeln!(o, "{}", style.bold("Not judged"));
        for n in &a.notes {
            wrap(&mut o, "  ", "  ", n);
        }
    }
    o
}

fn target(o: &mut String, t: &TargetReport, style: Style) {
    o.push('\n');
    let _ = writeln!(
        o,
        "{} {} ({}{})",
        style.bold(&capitalise(&t.service)),
        t.host,
        t.category,
        if t.required { ", required" } else { "" }
    );
    if let Some(d) = &t.dns {
        let text = match &d.error {
            Some(e) => style.bad(e),
            None => {
                let last = d.cnames.last().map(String::as_str).unwrap_or(&t.host);
                let addrs: Vec<String> =
                    d.addresses.iter().take(2).map(|a| a.to_string()).collect();
                format!(
                    "{} -> {} {}",
                    if d.cnames.is_empty() {
                        "A".to_owned()
                    } else {
                        format!("{} CNAMEs", d.cnames.len())
                    },
                    last,
                    if addrs.is_empty() {
                        d.rcode.clone().unwrap_or_default()
                    } else {
                        addrs.join(" ")
                    }
                ) + &format!(" ({})", opt_ms(d.rtt_ms))
            }
        };
        row(o, "  DNS", &text);
    }
    if let Some(fd) = &t.front_door {
        let km = fd
            .distance_km
            .map(|k| format!(", {k:.0} km"))
            .unwrap_or_default();
        row(
            o,
            "  Front door",
            &format!(
                "{} {}{}{km}",
                fd.code,
                fd.location.as_deref().unwrap_or(""),
                fd.country
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(tcp) = &t.tcp {
        let text = if tcp.connected == 0 {
            style.bad(&format!(
                "no connect ({} refused, {} timed out, {} unreachable)",
                tcp.failures.refused, tcp.failures.timed_out, tcp.failures.unreachable
            ))
        } else {
            format!(
                "median {}  p95 {}  {}/{} connected",
                opt_ms(tcp.median_ms),
                opt_ms(tcp.p95_ms),
                tcp.connected,
                tcp.samples
            )
        };
        row(o, &format!("  TCP {}", tcp.address.port()), &text);
    }
    if let Some(tls) = &t.tls {
        let verdict = match tls.verdict.as_str() {
            "genuine" => style.good("genuine"),
            "intercepted" => style.bad("INTERCEPTED"),
            v => style.bad(v),
        };
        let mut text = verdict;
        if let Some(issuer) = &tls.issuer {
            text.push_str(&format!(", issuer {issuer}"));
        }
        if let Some(ms) = tls.handshake_ms {
            text.push_str(&format!(" ({ms:.1} ms)"));
        }
        if let Some(e) = &tls.error {
            text.push_str(&format!(": {e}"));
        }
        row(o, "  TLS", &text);
    }
    if let Some(h) = &t.http {
        let mut text = match h.status {
            Some(s) => format!("{s} {}", h.verdict),
            None => h.verdict.clone(),
        };
        if let Some(p) = &h.proxy_product {
            text.push_str(&format!(" ({p})"));
        }
        if let Some(p) = &h.proxy {
            text.push_str(&format!(" via {p}"));
        }
        if let Some(e) = &h.error {
            text.push_str(&format!(": {e}"));
        }
        let ok = h.verdict == "ok";
        row(o, "  HTTP", &if ok { text } else { style.bad(&text) });
    }
    if let Some(s) = &t.stun {
        let text = if s.received == 0 {
            style.bad(&format!("no answer to {} requests", s.sent))
        } else {
            format!(
                "{} sent, {} lost ({:.1} %), RTT {}, jitter {}, MOS {}",
                s.sent,
                s.lost,
                s.loss_percent.unwrap_or(0.0),
                opt_ms(s.rtt_median_ms),
                opt_ms(s.jitter_ms),
                s.mos.map_or_else(|| "-".into(), |m| format!("{m:.2}"))
            )
        };
        row(o, &format!("  STUN {}", s.address.port()), &text);
    }
    if let Some(p) = &t.path {
        let text = match &p.error {
            Some(e) => e.clone(),
            None => format!(
                "{} hops, {}",
                p.hops.len(),
                if p.reached { "reached" } else { "not reached" }
            ),
        };
        row(o, "  Path", &text);
    }
}

fn finding(o: &mut String, f: &Finding, style: Style) {
    let head = format!("  {} {}  ", style.severity(&f.severity), f.code);
    let _ = writeln!(o, "{head}");
    wrap(o, "      ", "      ", &f.detail);
    wrap(o, "      -> ", "         ", &f.advice);
}

/// A label column of 14 and the text wrapped to 80 columns.
fn row(o: &mut String, label: &str, text: &str) {
    let first = format!("{label:<14}");
    wrap(o, &first, &" ".repeat(14), text);
}

/// Word-wraps `text` at 80 columns (ANSI sequences do not count), with `first` before the first line
/// and `rest` before the others.
fn wrap(o: &mut String, first: &str, rest: &str, text: &str) {
    let mut line = first.to_owned();
    let mut width = visible(first);
    let mut empty = true;
    for word in text.split(' ') {
        let w = visible(word);
        if !empty && width + 1 + w > 80 {
            o.push_str(&line);
            o.push('\n');
            line = rest.to_owned();
            width = visible(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
            width += 1;
        }
        line.push_str(word);
        width += w;
        empty = false;
    }
    o.push_str(&line);
    o.push('\n');
}

fn visible(s: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in s.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

fn placed(p: &Option<Placed>) -> String {
    match p {
        Some(p) => match p.distance_km {
            Some(km) => format!(" ({}, {km:.0} km from the office)", p.name),
            None => format!(" ({})", p.name),
        },
        None => String::new(),
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
}

fn capitalise(s: &str) -> String {
    match s {
        "sharepoint" => "SharePoint".into(),
        _ => {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wrap_at_80_columns_whatever_the_colour() {
        let mut o = String::new();
        let long = "word ".repeat(40);
        wrap(&mut o, "\x1b[1mLabel\x1b[0m  ", "       ", long.trim());
        for line in o.lines() {
            assert!(visible(line) <= 80, "{} columns: {line:?}", visible(line));
        }
        assert!(o.lines().count() >= 3);
        assert_eq!(visible("\x1b[1;31mERROR\x1b[0m"), 5);
    }
}
