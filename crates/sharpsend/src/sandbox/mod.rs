//! The built-in platform simulators, started together: `sharpsend sim` serves them for other
//! programs; `sharpsend serve --sandbox` starts them in-process and points every upstream at them.
//! Beside them runs a small receiver of signed webhooks (`/inbox/…`) to register as an event
//! destination; and under `serve --sandbox`, a connect points the simulator's webhooks at the new
//! integration ([`on_connect`]), so events start arriving without any set-up.

mod connect;

use std::time::Duration;

use sim_core::{Binder, Running, SimServer};

pub use connect::on_connect;

/// Sizes and seed of the simulated accounts.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    pub seed: u64,
    /// Iterable users (lazily generated: a million is fine).
    pub iterable_users: u64,
    /// Customer.io people.
    pub customerio_people: u64,
    /// Keap contacts.
    pub keap_contacts: u64,
    /// Iterable and Customer.io deliver one event of email activity this often to each
    /// configured webhook; `None` (the default, and what tests use): only the events fired by
    /// hand or caused through the API. `sharpsend sim` and `serve --sandbox` use
    /// [`SandboxOptions::EVENT_STREAM`].
    pub event_stream: Option<Duration>,
}

impl SandboxOptions {
    /// The stream of the interactive sandbox: modest, so the events list fills at reading pace.
    pub const EVENT_STREAM: Duration = Duration::from_secs(4);
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            iterable_users: sim_iterable::Options::default().users,
            customerio_people: sim_customerio::Options::default().people,
            keap_contacts: sim_keap::Options::default().contacts,
            event_stream: None,
        }
    }
}

/// The running simulators of all three platforms and the webhook receiver. Dropping it stops
/// them.
#[derive(Debug)]
pub struct Sandbox {
    pub platforms: Vec<Running>,
    /// The receiver of signed webhooks (`sim_core::receiver`).
    pub receiver: SimServer,
}

impl Sandbox {
    pub async fn start(binder: &mut Binder, opts: &SandboxOptions) -> std::io::Result<Self> {
        let iterable = sim_iterable::start(
            binder,
            sim_iterable::Options {
                seed: opts.seed,
                users: opts.iterable_users,
                event_stream: opts.event_stream,
                ..Default::default()
            },
        )
        .await?;
        let customerio = sim_customerio::start(
            binder,
            sim_customerio::Options {
                seed: opts.seed,
                people: opts.customerio_people,
                event_stream: opts.event_stream,
                ..Default::default()
            },
        )
        .await?;
        let keap = sim_keap::start(
            binder,
            sim_keap::Options {
                seed: opts.seed,
                contacts: opts.keap_contacts,
                ..Default::default()
            },
        )
        .await?;
        // Bound last, so `--base-port` keeps the simulators' ports where they were.
        let receiver = sim_core::receiver::start(binder).await?;
        Ok(Self {
            platforms: vec![iterable, customerio, keap],
            receiver,
        })
    }

    /// Where the receiver's inboxes are: `http://127.0.0.1:PORT/inbox`.
    pub fn receiver_url(&self) -> String {
        format!("{}/inbox", self.receiver.origin())
    }

    /// Every upstream variable of CONTRACT §1 and the simulator origin it should point at.
    pub fn upstream_overrides(&self) -> Vec<(&'static str, String)> {
        self.platforms
            .iter()
            .flat_map(|r| r.origins.iter().map(|o| (o.env, o.url.clone())))
            .collect()
    }

    /// A human-readable listing of origins and sandbox credentials.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for r in &self.platforms {
            out.push_str(&format!("\n  {}\n", r.platform));
            for o in &r.origins {
                out.push_str(&format!("    {:<36} {}\n", o.env, o.url));
            }
            for c in &r.credentials {
                out.push_str(&format!("    {:<36} {}\n", c.label, c.value));
            }
        }
        out.push_str(&format!(
            "\n  event receiver  {}\n    register http://…/inbox/NAME as a destination, PUT its \
             whsec_ secret to …/inbox/NAME/secret, GET …/inbox/NAME to watch\n",
            self.receiver_url()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sandbox_covers_every_upstream_variable() {
        let sandbox = Sandbox::start(&mut Binder::ephemeral(), &SandboxOptions::default())
            .await
            .unwrap();
        let overrides = sandbox.upstream_overrides();
        for (var, _) in connectors::Upstreams::DEFAULTS {
            assert!(
                overrides.iter().any(|(v, _)| *v == var),
                "{var} has no simulator"
            );
        }
        let upstreams = connectors::Upstreams::from_lookup(|var| {
            overrides
                .iter()
                .find(|(v, _)| *v == var)
                .map(|(_, u)| u.clone())
        })
        .expect("simulator origins are valid upstream settings");
        // Each simulator answers on the origin it claims.
        let resp = reqwest::get(format!("{}_sim/counters", upstreams.keap_api))
            .await
            .unwrap();
        assert!(resp.status().is_success());
        assert!(sandbox.describe().contains("keap client id"));
        assert!(
            sandbox
                .describe()
                .contains(&format!("event receiver  {}", sandbox.receiver_url()))
        );
        let resp = reqwest::get(sandbox.receiver_url()).await.unwrap();
        assert!(resp.status().is_success());
    }
}
