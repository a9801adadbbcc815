//! Sans-IO probe state machines (issue 2/10): dns, tcp, tls, stun and http status classification.
//!
//! Each probe takes `now` and events from the shell (`handle_*`), and is polled for what to send
//! (`poll_transmit`), when to wake (`poll_timeout`) and what it measured (`poll_result`).
