//! o365probe-collector: the central service that agents report to.
//!
//! It will hold UDP and HTTPS ingest of sealed report frames (read only through `o365probe_core::report`),
//! storage in SQLite (default) or PostgreSQL, per-office rollups, the score on Microsoft's published curves,
//! findings, a web UI, a JSON API, CSV export and Prometheus `/metrics`. Built in issue 5/10.
