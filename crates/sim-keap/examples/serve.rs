//! Runs the Keap simulator on a fixed port for manual poking:
//! `cargo run -p sim-keap --example serve -- 18080`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18080);
    let running = sim_keap::start(
        &mut sim_core::Binder::from_base("127.0.0.1", port),
        sim_keap::Options::default(),
    )
    .await
    .expect("start");
    for o in &running.origins {
        println!("{}={}", o.env, o.url);
    }
    for c in &running.credentials {
        println!("{}: {}", c.label, c.value);
    }
    tokio::signal::ctrl_c().await.expect("ctrl-c");
}
