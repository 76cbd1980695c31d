//! switchboard: an on-premises SIP/PBX engine.
//!
//! Data flows one way (see `DESIGN.md` of the project): sockets hand bytes to
//! [`sip::parse`]; messages go to [`sip::transaction`], whose events reach the registrar
//! and (later) the call layer. Every protocol core is sans-IO: it takes inputs and `now`
//! and returns outputs; only [`driver`] owns sockets, the clock, tasks and files.

pub mod cdr;
pub mod config;
pub mod ctl;
pub mod dialplan;
pub mod driver;
pub mod endpoint;
pub mod media;
pub mod sdp;
pub mod sip;
