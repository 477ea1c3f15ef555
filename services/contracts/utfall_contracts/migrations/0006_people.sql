-- People act too: who raised, resolved or closed, when a person signed in did (subject and display name).
ALTER TABLE contracts.disputes ADD COLUMN raised_by_person jsonb, ADD COLUMN resolved_by_person jsonb;
ALTER TABLE contracts.closed_periods ADD COLUMN closed_by_person jsonb;
ALTER TABLE contracts.webhook_endpoints ADD COLUMN registered_by_person jsonb;

CREATE OR REPLACE VIEW contracts_read.disputes AS
SELECT contract_id, payment_id, provider_id, episode_id, milestone_id, amount_ore, status, raised_by_role,
       raised_by_key_id, reason, raised_at, resolved_by_key_id, resolution_reason, resolved_at,
       raised_by_person, resolved_by_person
FROM contracts.disputes;

CREATE OR REPLACE VIEW contracts_read.closed_periods AS
SELECT contract_id, period, period_start, period_end, opening_balance_ore, net_ore, closing_balance_ore, entries,
       last_seq, closed_by_key_id, closed_at, closed_by_person
FROM contracts.closed_periods;

CREATE OR REPLACE VIEW contracts_read.webhook_endpoints AS
SELECT e.endpoint_id, e.contract_id, e.url, e.description, e.registered_by_key_id, e.registered_at, e.removed_at,
       e.delivered_seq, e.delivered_messages, e.failed_attempts, e.next_attempt_at, e.failing_since, e.last_error,
       e.previous_valid_until,
       (SELECT count(*) FROM contracts.ledger l WHERE l.contract_id = e.contract_id AND l.seq > e.delivered_seq)
           AS pending_messages,
       e.registered_by_person
FROM contracts.webhook_endpoints e;
