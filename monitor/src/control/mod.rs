//! The control socket (`[control] socket`): the daemon answers `pinwatch
//! status` over it.
//!
//! Protocol: one request per connection, one JSON line each way. The client
//! sends `{"command":"status"}`; the daemon answers with the status report,
//! or with `{"error": "..."}` for anything it will not serve. Requests are
//! bounded in size and time, so a misbehaving client costs one connection
//! slot for at most a few seconds and never disturbs the daemon.
pub(crate) mod client;
mod peer;
mod protocol;
mod server;

pub use client::{ClientError, REPLY_TIMEOUT, StatusReply, request_status};
pub use protocol::{
    MAX_REPLY, MAX_REQUEST, REQUEST_DEADLINE, Request, RequestError, parse_request,
};
pub use server::{ControlError, ControlHandle, ControlServer};
