//! From measurements to findings and scores: which of core's finding codes an assessment shows, with
//! the numbers that show it. The judgements themselves (what is far, what Teams needs, the score curves)
//! are the core's; this module decides which measurement each one is applied to.

use o365probe_core::assess::findings::BUFFER_BLOAT_MS;
use o365probe_core::assess::{
    self, exchange_score, is_far, sharepoint_score, teams_score, FindingCode, Remote,
};

use super::model::{Assessment, Finding, Scores, TargetReport};

/// The findings of an assessment, most severe first, and what could not be judged. `proxied` says
/// whether the office's web traffic to a host goes through a proxy (`[http] proxy` and the
/// environment's).
pub fn judge(a: &Assessment, proxied: &dyn Fn(&str) -> bool) -> (Vec<Finding>, Vec<String>) {
    let mut out = Findings::default();
    for t in &a.targets {
        dns(t, &mut out);
        tls(t, &mut out);
        proxy(t, &mut out);
        blocked(t, proxied(&t.host), &mut out);
        teams(t, &mut out);
        front_door(t, &mut out);
    }
    distances(a, &mut out);
    tunnels(a, &mut out);
    bloat(a, &mut out);
    out.list.sort_by_key(|f| {
        let code = FindingCode::from_code(&f.code);
        (
            std::cmp::Reverse(code.map(|c| c.severity())),
            code.and_then(|c| FindingCode::ALL.iter().position(|x| *x == c)),
        )
    });
    (out.list, out.notes)
}

/// Microsoft's scores where the measurements allow: Exchange from its front door's median TCP
/// latency, SharePoint from the download's 25th percentile, Teams from the MOS estimate.
pub fn scores(a: &Assessment) -> Scores {
    fn service<'a>(a: &'a Assessment, name: &'a str) -> impl Iterator<Item = &'a TargetReport> {
        a.targets.iter().filter(move |t| t.service == name)
    }
    let exchange = service(a, "exchange")
        .find_map(|t| t.tcp.as_ref()?.median_ms)
        .map(|ms| exchange_score(core_ms(ms)));
    let sharepoint = a
        .download
        .as_ref()
        .and_then(|d| d.p25_mbytes_per_s)
        .map(|mb| sharepoint_score((mb * 1e6) as u64));
    let teams = service(a, "teams")
        .find_map(|t| t.stun.as_ref()?.mos)
        .map(|mos| teams_score(mos as f32));
    Scores {
        exchange,
        sharepoint,
        teams,
    }
}

#[derive(Default)]
struct Findings {
    list: Vec<Finding>,
    notes: Vec<String>,
}

impl Findings {
    fn add(&mut self, code: FindingCode, target: Option<&str>, detail: String) {
        self.list.push(Finding {
            code: code.code().to_owned(),
            severity: code.severity().name().to_owned(),
            target: target.map(str::to_owned),
            detail,
            advice: code.advice().to_owned(),
        });
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// Targets whose failure users notice: required ones and the Optimize ones.
fn matters(t: &TargetReport) -> bool {
    t.required || t.category == "optimize"
}

fn dns(t: &TargetReport, out: &mut Findings) {
    let Some(d) = &t.dns else { return };
    if !matters(t) {
        return;
    }
    let why = if let Some(e) = &d.error {
        e.clone()
    } else if d.rcode.as_deref().is_some_and(|r| r != "NOERROR") {
        format!("the resolver answered {}", d.rcode.as_deref().unwrap_or(""))
    } else if d.addresses.is_empty() {
        "the answer has no address".into()
    } else {
        return;
    };
    out.add(
        FindingCode::DnsFailure,
        Some(&t.host),
        format!("{}: {why}", t.host),
    );
}

fn tls(t: &TargetReport, out: &mut Findings) {
    let Some(tls) = &t.tls else { return };
    if tls.verdict == "intercepted" {
        out.add(
            FindingCode::TlsInspection,
            Some(&t.host),
            format!("{} ({}): {}", t.host, t.category, tls.detail),
        );
    }
}

fn proxy(t: &TargetReport, out: &mut Findings) {
    let Some(h) = &t.http else { return };
    if t.category == "default" {
        return;
    }
    let detail = match (&h.proxy, &h.proxy_product) {
        (Some(url), _) => format!("{} is reached through the proxy {url}", h.url),
        (None, Some(product)) => format!("a {product} proxy answered for {}", h.url),
        (None, None) if matches!(h.verdict.as_str(), "proxy-auth-required" | "proxy-blocked") => {
            format!("a proxy answered {} for {}", status(h.status), h.url)
        }
        _ => return,
    };
    out.add(FindingCode::Proxy, Some(&t.host), detail);
}

fn status(s: Option<u16>) -> String {
    s.map_or_else(|| "without a status".into(), |s| s.to_string())
}

/// A required or Optimize endpoint is blocked when the path the office's clients use (through the
/// configured proxy, if any) does not reach it: a proxy refuses or wants credentials, nothing
/// connects, or the connection is cut once the server name is seen. A certificate the client does not
/// trust is not a block: TLS inspection is its own finding.
fn blocked(t: &TargetReport, proxied: bool, out: &mut Findings) {
    if !matters(t) || t.dns.as_ref().is_some_and(|d| d.addresses.is_empty()) {
        return;
    }
    let reason = match &t.http {
        Some(h) => match h.verdict.as_str() {
            "proxy-auth-required" => Some(format!(
                "the proxy wants credentials ({}) for {}",
                status(h.status),
                h.url
            )),
            "proxy-blocked" => Some(format!(
                "the proxy refuses {} ({})",
                h.url,
                status(h.status)
            )),
            "error" => h
                .error
                .as_deref()
                .filter(|e| !is_certificate_problem(e))
                .filter(|_| !tls_intercepted(t))
                .map(|e| format!("{}: {e}", h.url)),
            _ => None,
        },
        None if !proxied => direct_block(t),
        None => None,
    };
    if let Some(reason) = reason {
        out.add(
            FindingCode::EndpointBlocked,
            Some(&t.host),
            format!("{}: {reason}", t.host),
        );
    }
}

fn tls_intercepted(t: &TargetReport) -> bool {
    t.tls.as_ref().is_some_and(|x| x.verdict == "intercepted")
}

/// Without an HTTP check: nothing connects, or TLS is cut right after the ClientHello.
fn direct_block(t: &TargetReport) -> Option<String> {
    let tcp = t.tcp.as_ref()?;
    if tcp.connected == 0 && tcp.samples > 0 {
        let f = tcp.failures;
        return Some(format!(
            "no TCP connect to {} ({} refused, {} timed out, {} unreachable)",
            tcp.address, f.refused, f.timed_out, f.unreachable
        ));
    }
    let tls = t.tls.as_ref()?;
    let cut = tls.verdict == "failed" && tls.issuer.is_none();
    cut.then(|| {
        format!(
            "the TLS handshake with {} was cut: {}",
            tls.address,
            tls.error.as_deref().unwrap_or("no certificate")
        )
    })
}

/// An HTTPS failure that is about trusting the certificate, not about reaching the server.
pub fn is_certificate_problem(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "unknown issuer",
        "badsignature",
        "notvalidforname",
    ]
    .iter()
    .any(|w| e.contains(w))
}

fn teams(t: &TargetReport, out: &mut Findings) {
    let Some(s) = &t.stun else { return };
    if s.sent == 0 {
        return;
    }
    if s.received == 0 {
        out.add(
            FindingCode::UdpBlocked,
            Some(&t.host),
            format!(
                "{}: none of {} STUN requests to {} was answered",
                t.host, s.sent, s.address
            ),
        );
        return;
    }
    if s.missed_targets.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    for missed in &s.missed_targets {
        match missed.as_str() {
            "rtt" => parts.push(format!(
                "round trip {} ms (target < {} ms)",
                s.rtt_median_ms.unwrap_or(0.0),
                assess::teams::CLIENT_MAX_RTT.as_millis()
            )),
            "loss" => parts.push(format!(
                "loss {} % (target < {} %)",
                s.loss_percent.unwrap_or(0.0),
                assess::teams::CLIENT_MAX_LOSS.percent()
            )),
            "jitter" => parts.push(format!(
                "jitter {} ms (target < {} ms)",
                s.jitter_ms.unwrap_or(0.0),
                assess::teams::CLIENT_MAX_JITTER.as_millis()
            )),
            other => parts.push(other.to_owned()),
        }
    }
    let mos = s.mos.map(|m| format!(", MOS {m:.2}")).unwrap_or_default();
    out.add(
        FindingCode::TeamsQuality,
        Some(&t.host),
        format!("{}: {}{mos}", t.host, parts.join(", ")),
    );
}

fn front_door(t: &TargetReport, out: &mut Findings) {
    let Some(fd) = &t.front_door else { return };
    let Some(km) = fd.distance_km else {
        out.note("no [agent] location: the front door's distance is not judged".into());
        return;
    };
    if is_far(Remote::FrontDoor, km) {
        out.add(
            FindingCode::FarFrontDoor,
            Some(&t.host),
            format!(
                "{} reaches the front door {} ({}) {km:.0} km from the office",
                t.host,
                fd.code,
                fd.location.as_deref().unwrap_or("unknown place")
            ),
        );
    }
}

fn distances(a: &Assessment, out: &mut Findings) {
    let r = &a.resolver;
    match (&r.address, &r.location) {
        (Some(addr), Some(place)) => match place.distance_km {
            Some(km) if is_far(Remote::Resolver, km) => out.add(
                FindingCode::FarResolver,
                None,
                format!(
                    "the resolver queries from {addr} ({}), {km:.0} km from the office",
                    place.name
                ),
            ),
            Some(_) => {}
            None => out.note("no [agent] location: the resolver's distance is not judged".into()),
        },
        (Some(addr), None) => out.note(format!(
            "the resolver's address {addr} is not in [geo]: its distance is not judged"
        )),
        (None, _) => out.note("no whoami name answered: the resolver's address is unknown".into()),
    }
    let e = &a.egress;
    match (&e.address, &e.location) {
        (Some(addr), Some(place)) => match place.distance_km {
            Some(km) if is_far(Remote::Egress, km) => out.add(
                FindingCode::Backhaul,
                None,
                format!(
                    "the office reaches the internet at {addr} ({}), {km:.0} km away",
                    place.name
                ),
            ),
            Some(_) => {}
            None => out.note("no [agent] location: the egress's distance is not judged".into()),
        },
        (Some(addr), None) => out.note(format!(
            "the egress address {addr} is not in [geo]: backhaul is not judged"
        )),
        (None, _) => out.note("no STUN answer: the egress address is unknown".into()),
    }
}

fn tunnels(a: &Assessment, out: &mut Findings) {
    let tunneled: Vec<String> = a
        .split_tunnel
        .iter()
        .filter_map(|p| {
            let kind = p.tunnel.as_ref()?;
            Some(format!(
                "{} via {} ({kind})",
                p.prefix,
                p.interface.as_deref().unwrap_or("?")
            ))
        })
        .collect();
    if !tunneled.is_empty() {
        out.add(
            FindingCode::VpnTunnel,
            None,
            format!(
                "Optimize traffic goes into a tunnel: {}",
                tunneled.join(", ")
            ),
        );
    }
}

fn bloat(a: &Assessment, out: &mut Findings) {
    let Some(d) = &a.download else { return };
    if let (Some(idle), Some(loaded)) = (d.idle_latency_ms, d.loaded_latency_ms) {
        if loaded - idle > f64::from(BUFFER_BLOAT_MS) {
            out.add(
                FindingCode::BufferBloat,
                None,
                format!(
                    "latency {idle:.1} ms idle, {loaded:.1} ms while downloading {}",
                    d.url
                ),
            );
        }
    }
}

fn core_ms(ms: f64) -> o365probe_core::time::Duration {
    o365probe_core::time::Duration::from_micros((ms * 1000.0).max(0.0) as u64)
}
