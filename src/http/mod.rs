//! HTTP/1.1 on `may` coroutines: the server publishers talk to and the client leadx uses to call buyers.

pub mod client;
pub mod deadline;
pub mod forwarded;
pub mod server;
pub mod url;
