//! The normalised campaign metric keys every platform's figures are reported under.

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
