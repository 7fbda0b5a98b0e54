//! What the delivery worker needs besides the store, kept in the application state: the
//! delivery client (built once, with the address rules of [`super::guard`]) and the bell that
//! wakes the worker when this process queues messages.

use std::{sync::Arc, time::Duration};

use super::guard;

/// How long one delivery attempt may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What the worker needs besides the store: the delivery client and the wake-up bell.
pub struct Outbound {
    pub(crate) client: reqwest::Client,
    pub(crate) allow_private: bool,
    /// Rung when this process queues messages, so they go out at once.
    pub wakeup: tokio::sync::Notify,
}

impl Outbound {
    /// No redirects, no proxies, a [`TIMEOUT`]; names resolved to public addresses only unless
    /// `allow_private`.
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("SharpSend-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(guard::PublicResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
            wakeup: tokio::sync::Notify::new(),
        })
    }

    /// Wakes the worker: messages were queued.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}
