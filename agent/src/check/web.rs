//! The HTTP(S) check and the download, in the assessment's terms: crate::http and crate::download do
//! the requests (blocking, so on the runtime's blocking pool), the core judges the answers.

use std::net::{IpAddr, SocketAddr};

use o365probe_core::report::HttpVerdict;

use super::model::{Download, HttpReport};
use super::{ms_std, round3, us, Context};
use crate::config::Target;
use crate::download::{self, DownloadOptions};
use crate::http::{self, HttpOptions};
use crate::net::SocketOptions;

/// One request to the target's URL (`https://host/` for 443), through the configured proxy or
/// directly to the addresses the office's resolver gave, from a socket bound as `opts` says.
pub(super) async fn check(
    ctx: &Context<'_>,
    target: &Target,
    resolved: &[IpAddr],
    opts: &SocketOptions,
) -> Option<HttpReport> {
    let url = http::url_for(target)?;
    let mut options = HttpOptions::for_url(&url, &ctx.config.http, &ctx.proxy_env);
    options.bind = opts.clone();
    options.resolved = resolved.to_vec();
    let result = tokio::task::spawn_blocking(move || http::check(&url, &options)).await;
    let check = match result {
        Ok(c) => c,
        Err(e) => {
            return Some(HttpReport {
                url: http::url_for(target)?,
                proxy: None,
                status: None,
                verdict: "error".into(),
                proxy_product: None,
                ttfb_ms: None,
                error: Some(format!("HTTP check task: {e}")),
            })
        }
    };
    Some(HttpReport {
        verdict: verdict_name(check.verdict()).into(),
        proxy_product: check.proxy_product().map(|p| p.name().to_owned()),
        ttfb_ms: check.status.map(|_| ms_std(check.ttfb)),
        error: check.failure.as_ref().map(|f| f.to_string()),
        status: check.status,
        proxy: check.proxy,
        url: check.url,
    })
}

/// The `[download]` test, sampling latency to `probe_to` (a front door that answered TCP).
pub(super) async fn download(
    ctx: &Context<'_>,
    probe_to: Option<SocketAddr>,
    opts: &SocketOptions,
) -> Option<Download> {
    let mut options = DownloadOptions::from_config(
        &ctx.config.download,
        &ctx.config.http,
        &ctx.proxy_env,
        probe_to,
    )?;
    options.bind = opts.clone();
    let url = options.url.clone();
    let m = match tokio::task::spawn_blocking(move || download::run(&options)).await {
        Ok(m) => m,
        Err(e) => {
            return Some(Download {
                url,
                bytes: 0,
                duration_ms: 0.0,
                mbytes_per_s: None,
                p25_mbytes_per_s: None,
                idle_latency_ms: None,
                loaded_latency_ms: None,
                error: Some(format!("download task: {e}")),
            })
        }
    };
    let mb = |b: u64| round3(b as f64 / 1e6);
    let median = |r: Option<o365probe_core::report::Rtt>| r.map(|r| us(r.median_us()));
    Some(Download {
        bytes: m.bytes,
        duration_ms: ms_std(m.duration),
        mbytes_per_s: m.throughput().map(mb),
        p25_mbytes_per_s: m.p25_throughput().map(mb),
        idle_latency_ms: median(m.idle_latency()),
        loaded_latency_ms: median(m.loaded_latency()),
        error: m.failure.as_ref().map(|f| f.to_string()),
        url: m.url,
    })
}

fn verdict_name(v: HttpVerdict) -> &'static str {
    match v {
        HttpVerdict::Ok => "ok",
        HttpVerdict::ProxyAuthRequired => "proxy-auth-required",
        HttpVerdict::ProxyBlocked => "proxy-blocked",
        HttpVerdict::Redirected => "redirected",
        HttpVerdict::Error => "error",
    }
}
