//! switchboard: an on-premises SIP/PBX engine.
//!
//! Data flows one way: sockets hand bytes to [`sip::parse`]; messages go to
//! [`sip::transaction`], whose events reach the [`endpoint`] (registrar, digest auth, and
//! the B2BUA driven by the [`dialplan`]); the endpoint emits transmits, [`media`] commands
//! for the RTP relay and [`cdr`] records for the store. Every protocol core is sans-IO: it
//! takes inputs and `now` and returns outputs; only [`driver`] owns sockets, the clock,
//! tasks and files.

#![forbid(unsafe_code)]

pub mod acd;
pub mod cdr;
pub mod config;
pub mod ctl;
pub mod diag;
pub mod dialplan;
pub mod driver;
pub mod endpoint;
pub mod hours;
pub mod media;
pub mod say;
pub mod sdp;
pub mod sip;
pub mod voicemail;
