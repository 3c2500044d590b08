//! Shared plumbing of the three services.
//!
//! # Layout
//! - [`config`]: typed configuration, loaded from defaults, an optional TOML file and `CHAT__*`
//!   environment variables, validated at start-up.
//! - [`telemetry`]: tracing and the Prometheus recorder, set up once per process.
//! - [`shutdown`]: the one shutdown mechanism (a `CancellationToken` cancelled by SIGINT/SIGTERM)
//!   and the bounded drain every service ends with.
//! - [`retry`]: the one retry policy (exponential backoff with jitter).
//! - [`auth`]: JWT access tokens, issued by the API and verified by the API and the gateways.
//! - [`ops`]: the internal HTTP server with `/healthz`, `/readyz` and `/metrics`.

pub mod auth;
pub mod config;
pub mod ops;
pub mod retry;
pub mod shutdown;
pub mod telemetry;
