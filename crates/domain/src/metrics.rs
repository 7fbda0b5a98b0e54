//! The normalised campaign metric keys every platform's figures are reported under.

use crate::Platform;

/// The normalised metric keys, in answer order.
pub const METRICS: [&str; 10] = [
    "sent",
    "delivered",
    "opens",
    "uniqueOpens",
    "clicks",
    "uniqueClicks",
    "bounces",
    "unsubscribes",
    "complaints",
    "conversions",
];

/// The metrics a platform's webhooks can report (so a zero there is a real zero).
pub fn webhook_metrics(platform: Platform) -> &'static [&'static str] {
    match platform {
        // emailSend, emailOpen, emailClick, emailBounce, emailUnSubscribe, emailComplaint
        // (and their SMS/push counterparts); no delivered or conversion event.
        Platform::Iterable => &[
            "sent",
            "opens",
            "uniqueOpens",
            "clicks",
            "uniqueClicks",
            "bounces",
            "unsubscribes",
            "complaints",
        ],
        // Reporting webhooks carry every delivery metric.
        Platform::Customerio => &METRICS,
        // Keap's REST hooks are about contacts, opportunities and orders: no email events.
        Platform::Keap => &[],
    }
}
