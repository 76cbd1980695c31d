//! The SIP stack: message model, parser and printer, transactions, digest auth and the
//! registrar. Everything here is sans-IO: bytes and `now` in, messages and deadlines out.

pub mod auth;
pub mod chars;
pub mod dialog;
pub mod header;
pub mod method;
pub mod msg;
pub mod parse;
pub mod registrar;
pub mod replaces;
pub mod transaction;
pub mod uri;

pub use msg::{Header, HeaderName, Message, Method, StartLine, StatusCode};
pub use parse::{parse_datagram, parse_stream, Frame, Limits, ParseError, ParseErrorKind};
pub use uri::Uri;

use thiserror::Error;

/// A header value or URI that does not follow the RFC 3261 grammar.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A required header is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The value does not match the grammar; the text says where it went wrong.
    #[error("{0}")]
    Syntax(&'static str),
    /// A URI does not match the grammar.
    #[error("bad URI: {0}")]
    BadUri(&'static str),
}
