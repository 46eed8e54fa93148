//! HTTP plumbing the cloud connectors share (Google Workspace and
//! Microsoft 365): what is the same whatever the API.
//!
//! * [`transport`]: one request sent and its whole answer read
//!   ([`send`] → [`Reply`]), a transport failure in words with its causes
//!   (always retryable: the retry policy decides), the `Retry-After`
//!   header.
//! * [`token`]: an OAuth access token replaced a margin before it expires
//!   ([`AccessToken`]), its cache obtained by one caller at a time within
//!   one retry budget ([`TokenSlot`]), and the connector's final
//!   authentication failure ([`FinalFailure`]): once its credentials were
//!   refused, nothing more is sent to that system in the run.
//!
//! What differs per API (error bodies, how a token is requested, which
//! statuses mean what) stays in each connector.

pub mod token;
pub mod transport;

pub use token::{AccessToken, FinalFailure, TokenSlot};
pub use transport::{describe_transport_error, retry_after, send, Reply};
