//! The HTTP(S) check and the download, in the assessment's terms. Not wired to the HTTP client yet:
//! until then a check has no `http` section and no download.

use std::net::SocketAddr;

use super::model::{Download, HttpReport};
use super::Context;
use crate::config::{Target, Uplink};
use crate::net::SocketOptions;

pub(super) async fn check(
    _ctx: &Context<'_>,
    _target: &Target,
    _port: u16,
    _uplink: Option<&Uplink>,
) -> Option<HttpReport> {
    None
}

pub(super) async fn download(
    _ctx: &Context<'_>,
    _url: &str,
    _probe_to: Option<SocketAddr>,
    _opts: &SocketOptions,
) -> Option<Download> {
    None
}
