//! pinwatch: pins database hostnames to their addresses and raises alerts
//! when DNS answers or connects leave the pinned sets.
//!
//! Flow: [`kernel`] source → [`decode`] → [`detector`] (pure) → [`alert`]
//! sink, wired by [`daemon`]; [`cli`] holds one module per subcommand.
pub mod alert;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod decode;
pub mod detector;
pub mod dnstext;
pub mod event;
pub mod heap;
pub mod identity;
pub mod kernel;
pub mod learn;
pub mod metrics;
pub mod reassembly;
pub mod replay;
pub mod state;
pub mod status;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod readme_tests;
