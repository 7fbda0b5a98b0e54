//! The small data sets (tags, campaigns, opportunities, stages, orders, products, lead sources),
//! generated from the seed at start and kept in memory, rendered in v1 and v2 shapes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde_json::{Value, json};
use sim_core::{mix, pick};

use crate::contacts::{v1_time, v2_time};

const BASE: i64 = 1_672_531_200; // 2023-01-01

fn t(seed: u64, i: u64, salt: u64) -> DateTime<Utc> {
    let off = i64::try_from(mix(seed ^ i ^ salt) % (600 * 86_400)).unwrap_or(0);
    Utc.timestamp_opt(BASE + off, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct Tag {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category: Option<(u64, String)>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Tag {
    pub fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category.as_ref().map(|(id, name)| json!({"id": id, "name": name, "description": ""})),
        })
    }

    pub fn v2(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "description": self.description,
            "create_time": v2_time(self.created),
            "update_time": v2_time(self.updated),
        });
        if let Some((id, _)) = &self.category {
            v["category"] = json!({"id": id.to_string()});
        }
        v
    }
}

const TAG_NAMES: &[&str] = &[
    "Nurture Subscriber",
    "Newsletter: Weekly",
    "Newsletter: Daily",
    "Paid Subscriber",
    "Webinar Attendee",
    "Customer",
    "Lead",
    "VIP",
    "Churn Risk",
    "Referral",
    "Podcast Listener",
    "Event 2025",
];
const TAG_CATEGORIES: &[(u64, &str)] = &[(10, "Subscribers"), (12, "Lifecycle"), (14, "Events")];

pub fn tags(seed: u64, n: u64) -> BTreeMap<u64, Tag> {
    (0..n)
        .map(|i| {
            let id = 91 + 2 * i;
            let base = *pick(TAG_NAMES, i);
            let name = if i < TAG_NAMES.len() as u64 {
                base.to_owned()
            } else {
                format!("{base} {i}")
            };
            let created = t(seed, i, 1);
            let tag = Tag {
                id,
                name,
                description: String::new(),
                category: (!mix(seed ^ i).is_multiple_of(4)).then(|| {
                    let (cid, cname) = *pick(TAG_CATEGORIES, mix(seed ^ i ^ 7));
                    (cid, cname.to_owned())
                }),
                created,
                updated: created + Duration::days(3),
            };
            (id, tag)
        })
        .collect()
}

pub fn tag_categories() -> &'static [(u64, &'static str)] {
    TAG_CATEGORIES
}

#[derive(Clone, Debug)]
pub struct Campaign {
    pub id: u64,
    pub name: String,
    pub published: bool,
    pub created: DateTime<Utc>,
    pub active: u64,
    pub completed: u64,
}

impl Campaign {
    pub fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "locked": false,
            "date_created": v1_time(self.created),
            "published_date": self.published.then(|| v1_time(self.created + Duration::days(1))),
            "published_status": self.published,
            "time_zone": "America/New_York",
            "published_time_zone": "America/New_York",
            "created_by_global_id": 1,
            "active_contact_count": self.active,
            "completed_contact_count": self.completed,
            "error_message": null,
        })
    }

    pub fn v2(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "locked": false,
            "date_created": v2_time(self.created),
            "published_status": self.published,
            "time_zone": "America/New_York",
            "published_time_zone": "America/New_York",
            "created_by_global_id": "1",
            "active_contact_count": self.active,
            "completed_contact_count": self.completed,
        });
        if self.published {
            v["published_date"] = json!(v2_time(self.created + Duration::days(1)));
        }
        v
    }
}

const CAMPAIGN_NAMES: &[&str] = &[
    "Welcome Series",
    "Weekly Digest",
    "Re-engagement",
    "Paid Upgrade",
    "Webinar Follow-up",
    "Black Friday",
];

pub fn campaigns(seed: u64, n: u64) -> Vec<Campaign> {
    (0..n)
        .map(|i| {
            let h = mix(seed ^ (i + 1000));
            Campaign {
                id: 100 + i,
                name: format!("{} {}", pick(CAMPAIGN_NAMES, i), i / 6 + 1),
                published: !h.is_multiple_of(5),
                created: t(seed, i, 2),
                active: h % 500,
                completed: (h >> 16) % 2000,
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: u64,
    pub name: &'static str,
    pub order: u32,
    pub probability: u32,
    pub target_days: u32,
}

pub const STAGES: &[Stage] = &[
    Stage {
        id: 18,
        name: "New Opportunity",
        order: 10,
        probability: 0,
        target_days: 1,
    },
    Stage {
        id: 20,
        name: "Qualified",
        order: 20,
        probability: 25,
        target_days: 5,
    },
    Stage {
        id: 22,
        name: "Proposal",
        order: 30,
        probability: 50,
        target_days: 7,
    },
    Stage {
        id: 24,
        name: "Won",
        order: 40,
        probability: 100,
        target_days: 0,
    },
    Stage {
        id: 26,
        name: "Lost",
        order: 50,
        probability: 0,
        target_days: 0,
    },
];

impl Stage {
    fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "details": {
                "probability": self.probability,
                "stage_order": self.order,
                "target_num_days": self.target_days,
                "check_list_items": [],
            },
            "reasons": [],
        })
    }

    pub fn v2(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "order": self.order,
            "target_number_days": self.target_days,
            "probability": self.probability,
            "checklist_items": [],
        })
    }
}

#[derive(Clone, Debug)]
pub struct Opportunity {
    pub id: u64,
    pub title: String,
    pub contact_id: u64,
    pub contact_email: String,
    pub contact_first: String,
    pub contact_last: String,
    pub stage: usize,
    pub created: DateTime<Utc>,
    pub revenue: f64,
}

impl Opportunity {
    pub fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "opportunity_title": self.title,
            "next_action_date": null,
            "next_action_notes": "",
            "opportunity_notes": "",
            "estimated_close_date": null,
            "include_in_forecast": 0,
            "projected_revenue_low": self.revenue,
            "projected_revenue_high": self.revenue * 1.5,
            "contact": {
                "id": self.contact_id,
                "email": self.contact_email,
                "first_name": self.contact_first,
                "last_name": self.contact_last,
                "company_name": "",
                "job_title": null,
                "phone_number": "",
            },
            "stage": STAGES.get(self.stage).map(Stage::v1),
            "user": {"id": 1, "first_name": "Integration", "last_name": "User"},
            "date_created": v1_time(self.created),
            "last_updated": v1_time(self.created),
            "affiliate_id": 0,
            "custom_fields": [{"id": 18, "content": pick(&["purple", "green", "blue"], self.id)}],
        })
    }

    pub fn v2(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "opportunity_title": self.title,
            "contact": {
                "id": self.contact_id.to_string(),
                "email": self.contact_email,
                "first_name": self.contact_first,
                "last_name": self.contact_last,
                "company_name": "",
                "phone_number": "",
            },
            "stage": STAGES.get(self.stage).map(|st| json!({
                "id": st.id.to_string(),
                "name": st.name,
                "details": {
                    "probability": st.probability,
                    "stage_order": st.order,
                    "target_num_days": st.target_days,
                    "checklist_items": [],
                },
                "reasons": [],
            })),
            "user": {"id": "1", "first_name": "Integration", "last_name": "User"},
            "next_action_notes": "",
            "opportunity_notes": "",
            "include_in_forecast": false,
            "projected_revenue_low": self.revenue,
            "projected_revenue_high": self.revenue * 1.5,
            "custom_fields": [{"id": "18", "content": pick(&["purple", "green", "blue"], self.id)}],
            "created_time": v2_time(self.created),
            "last_updated_time": v2_time(self.created),
            "affiliate_id": "0",
        })
    }
}

/// Whole-unit price → integer amount in the smallest currency unit.
fn cents(amount: f64) -> i64 {
    // Prices are small whole numbers here, so the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    let c = (amount * 100.0).round() as i64;
    c
}

#[derive(Clone, Debug)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price: f64,
    pub active: bool,
}

impl Product {
    pub fn v1(&self) -> Value {
        json!({
            "id": self.id,
            "product_name": self.name,
            "product_desc": format!("{} (simulated)", self.name),
            "product_short_desc": "",
            "product_price": self.price,
            "sku": format!("SKU-{}", self.id),
            "url": "",
            "status": i32::from(self.active),
            "subscription_only": false,
            "subscription_plans": [],
            "product_options": [],
        })
    }

    pub fn v2(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "description": format!("{} (simulated)", self.name),
            "price": {"amount": cents(self.price), "currency_code": "USD", "formatted_amount": format!("${:.2}", self.price)},
            "sku": format!("SKU-{}", self.id),
            "active": self.active,
            "subscription_only": false,
        })
    }
}

pub fn products(seed: u64, n: u64) -> Vec<Product> {
    const NAMES: &[&str] = &[
        "Monthly Membership",
        "Annual Membership",
        "E-book",
        "Course",
        "Sponsorship",
    ];
    (0..n)
        .map(|i| Product {
            id: 1 + i,
            name: format!("{} {}", pick(NAMES, i), i / 5 + 1),
            price: f64::from(u32::try_from(5 + mix(seed ^ i ^ 55) % 195).unwrap_or(9)),
            active: i % 7 != 6,
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Order {
    pub id: u64,
    pub title: String,
    pub contact_id: u64,
    pub contact_email: String,
    pub contact_first: String,
    pub contact_last: String,
    pub product: Product,
    pub quantity: u64,
    pub paid: bool,
    pub created: DateTime<Utc>,
}

impl Order {
    fn total(&self) -> f64 {
        self.product.price * f64::from(u32::try_from(self.quantity).unwrap_or(1))
    }

    pub fn v1(&self) -> Value {
        let total = self.total();
        json!({
            "id": self.id,
            "title": self.title,
            "status": if self.paid { "PAID" } else { "UNPAID" },
            "recurring": false,
            "total": total,
            "total_paid": if self.paid { total } else { 0.0 },
            "total_due": if self.paid { 0.0 } else { total },
            "refund_total": 0.0,
            "contact": {
                "id": self.contact_id,
                "email": self.contact_email,
                "first_name": self.contact_first,
                "last_name": self.contact_last,
                "company_name": "",
                "job_title": "",
            },
            "notes": "",
            "terms": "",
            "source_type": "API",
            "creation_date": v1_time(self.created),
            "modification_date": v1_time(self.created),
            "order_date": v1_time(self.created),
            "lead_affiliate_id": 0,
            "sales_affiliate_id": 0,
            "allow_payment": !self.paid,
            "allow_paypal": false,
            "order_items": [{
                "id": self.id * 10,
                "name": self.product.name,
                "description": "",
                "type": "Product",
                "notes": "",
                "quantity": self.quantity,
                "cost": 0.0,
                "price": self.product.price,
                "discount": null,
                "product": {"id": self.product.id, "name": self.product.name, "description": "", "sku": format!("SKU-{}", self.product.id), "shippable": false, "taxable": false},
            }],
        })
    }

    /// v2 money: integer amounts in the smallest currency unit (V2SPEC `CurrencyValue`).
    pub fn v2(&self) -> Value {
        let money = |amount: f64| json!({"amount": cents(amount), "currency_code": "USD", "formatted_amount": format!("${amount:.2}")});
        let total = self.total();
        json!({
            "id": self.id.to_string(),
            "title": self.title,
            "status": if self.paid { "PAID" } else { "SENT" },
            "total": money(total),
            "total_paid": money(if self.paid { total } else { 0.0 }),
            "total_due": money(if self.paid { 0.0 } else { total }),
            "refund_total": money(0.0),
            "contact": {
                "id": self.contact_id.to_string(),
                "email": self.contact_email,
                "given_name": self.contact_first,
                "family_name": self.contact_last,
            },
            "order_type": "ONLINE",
            "source_type": "API",
            "creation_time": v2_time(self.created),
            "modification_time": v2_time(self.created),
            "order_time": v2_time(self.created),
            "allow_payment": !self.paid,
            "allow_paypal": false,
            "order_items": [{
                "id": (self.id * 10).to_string(),
                "name": self.product.name,
                "description": "",
                "notes": "",
                "quantity": self.quantity,
                "item_type": "PRODUCT",
                "price_per_unit": money(self.product.price),
                "product": {
                    "id": self.product.id.to_string(),
                    "name": self.product.name,
                    "sku": format!("SKU-{}", self.product.id),
                    "description": "",
                    "shippable": false,
                    "taxable": false,
                },
            }],
        })
    }
}

#[derive(Clone, Debug)]
pub struct LeadSource {
    pub id: u64,
    pub name: &'static str,
}

pub const LEAD_SOURCES: &[LeadSource] = &[
    LeadSource {
        id: 1,
        name: "Website",
    },
    LeadSource {
        id: 2,
        name: "Referral",
    },
    LeadSource {
        id: 3,
        name: "Podcast",
    },
    LeadSource {
        id: 4,
        name: "Webinar",
    },
    LeadSource {
        id: 5,
        name: "Social",
    },
];

impl LeadSource {
    pub fn v2(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "description": "",
            "vendor": "",
            "medium": "",
            "message": "",
            "status": "ACTIVE",
            "lead_source_category_id": "1",
            "create_time": v2_time(Utc.timestamp_opt(BASE, 0).single().unwrap_or_default()),
            "update_time": v2_time(Utc.timestamp_opt(BASE, 0).single().unwrap_or_default()),
        })
    }
}

/// Opportunities and orders refer to contacts by id; `contact` resolves one.
pub fn opportunities(
    seed: u64,
    n: u64,
    contact: &dyn Fn(u64) -> Option<(u64, String, String, String)>,
    contacts: u64,
) -> Vec<Opportunity> {
    (0..n)
        .filter_map(|i| {
            let h = mix(seed ^ (i + 5000));
            let (cid, email, first, last) = contact(1 + h % contacts.max(1))?;
            Some(Opportunity {
                id: 2 + 2 * i,
                title: format!("Sponsorship deal {}", i + 1),
                contact_id: cid,
                contact_email: email,
                contact_first: first,
                contact_last: last,
                stage: usize::try_from((h >> 8) % STAGES.len() as u64).unwrap_or(0),
                created: t(seed, i, 3),
                revenue: f64::from(u32::try_from((h >> 16) % 5000).unwrap_or(0)),
            })
        })
        .collect()
}

pub fn orders(
    seed: u64,
    n: u64,
    contact: &dyn Fn(u64) -> Option<(u64, String, String, String)>,
    contacts: u64,
    products: &[Product],
) -> Vec<Order> {
    if products.is_empty() {
        return Vec::new();
    }
    (0..n)
        .filter_map(|i| {
            let h = mix(seed ^ (i + 9000));
            let (cid, email, first, last) = contact(1 + h % contacts.max(1))?;
            let product = pick(products, h >> 8).clone();
            Some(Order {
                id: 1 + i,
                title: format!("{} order", product.name),
                contact_id: cid,
                contact_email: email,
                contact_first: first,
                contact_last: last,
                quantity: 1 + (h >> 20) % 3,
                paid: !(h >> 24).is_multiple_of(4),
                created: t(seed, i, 4),
                product,
            })
        })
        .collect()
}
