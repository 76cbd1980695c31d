//! switchboard: an on-premises SIP/PBX engine.
//!
//! Data flows one way: sockets hand bytes to [`sip::parse`]; messages go to
//! [`sip::transaction`], whose events reach the [`endpoint`] (registrar, digest auth, the
//! calls driven by the [`dialplan`], the [`acd`]); the endpoint emits transmits, [`media`]
//! commands for the RTP relay, [`cdr`] records for the store, queue-log lines and mailbox
//! changes. Every protocol core is sans-IO; only [`driver`] owns sockets, the clock, tasks
//! and files.
//!
//! The contract between a core and its driver (str0m's run loop):
//!
//! 1. The driver feeds inputs, each with `now`: `handle_datagram` / `handle_message` (a
//!    parsed message from a stream), `handle_media_event` (what the relay reports),
//!    `handle_timeout` (once the instant from `poll_timeout` is reached).
//! 2. After every input it drains `poll_output` until `None`, one exhaustive `match` over
//!    [`endpoint::Output`]: a transmit to send, a media command, a CDR, a queue-log line,
//!    a mailbox change, a snapshot of callbacks or agents to persist.
//! 3. It sleeps until the next input or `poll_timeout`, whichever is first.
//!
//! A core never blocks, reads a clock or touches a socket or file; a test drives it with
//! a virtual `now` and sees every output, so a 32-second timer takes microseconds.

#![forbid(unsafe_code)]

pub mod acd;
pub mod cdr;
pub mod config;
pub mod ctl;
pub mod diag;
pub mod dialplan;
pub mod driver;
pub mod endpoint;
pub mod guard;
pub mod hours;
pub mod media;
pub mod say;
pub mod sdp;
pub mod sip;
pub mod story;
pub mod voicemail;
