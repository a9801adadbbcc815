//! Verdicts shared by agent and collector: where the front door is and how far, how Teams media
//! fares against Microsoft's targets (and its MOS), and the points each service scores.
//!
//! Everything here is a pure function of measurements, so the router that prints `o365probe check`
//! and the collector that aggregates a thousand routers reach the same verdict from the same numbers.
//!
//! - [`location`]: IATA location codes, the front-door code in a CNAME chain, great-circle distance,
//!   the nearest known place, and Microsoft's "too far" distances.
//! - [`teams`]: Microsoft's Teams network targets and the ITU-T G.107 E-model MOS.
//! - [`score`]: Microsoft's 0-100 curves for Exchange, SharePoint and Teams.
//! - [`findings`]: the codes, severities and advice of what `check` and the collector report.
//! - [`interception`]: whether a TLS certificate chain leads to Microsoft's roots or was re-issued by a
//!   middlebox, and by whom.

pub mod findings;
pub mod interception;
pub mod location;
pub mod score;
pub mod teams;

#[rustfmt::skip]
mod location_table;
#[rustfmt::skip]
mod roots_table;

pub use findings::{FindingCode, Severity};
pub use interception::{
    assess_chain, microsoft_roots, verdict, Anchor, ChainAssessment, ExpectedIssuers, ExpectedRoot,
    Interception, RootError, RootsError, TrustedRoots, Unjudged, Validity, Verdict,
};
pub use location::{
    front_door_code, great_circle_km, is_far, known_locations, lookup, nearest_location, GeoPoint,
    Location, LocationCode, Remote,
};
pub use score::{exchange_score, sharepoint_score, teams_score};
pub use teams::{mos, Loss, TeamsQuality, TeamsTarget, TeamsTargets, TeamsVerdict};
