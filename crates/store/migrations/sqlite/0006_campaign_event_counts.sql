-- Our own campaign metrics count received webhook events per campaign and day
-- (analytics: `Store::campaign_events`): one integration's events of one campaign in a time
-- range, without scanning the publisher's whole event log.
CREATE INDEX received_events_campaign ON received_events(integration_id, campaign_id, occurred_at);
