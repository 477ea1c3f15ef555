-- Webhook endpoints of a contract: each receives the contract's ledger in `seq` order from its cursor on.
CREATE TABLE webhook_endpoints (
    endpoint_id text PRIMARY KEY,
    contract_id text NOT NULL,
    url text NOT NULL,
    description text NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_valid_until timestamptz,
    registered_by_key_id text NOT NULL,
    registered_at timestamptz NOT NULL,
    removed_at timestamptz,
    delivered_seq bigint NOT NULL DEFAULT 0,  -- the ledger seq of the last message the receiver acknowledged
    delivered_messages bigint NOT NULL DEFAULT 0,
    failed_attempts int NOT NULL DEFAULT 0,  -- of the message after the cursor
    next_attempt_at timestamptz,  -- NULL: now
    failing_since timestamptz,  -- the first failed attempt since the last delivery
    last_error text
);
CREATE INDEX webhook_endpoints_contract ON webhook_endpoints (contract_id);

-- Every attempt, delivered or not: the endpoint's delivery log (kept for `UTFALL_WEBHOOK_LOG_DAYS`).
CREATE TABLE webhook_attempts (
    attempt_id bigserial PRIMARY KEY,
    endpoint_id text NOT NULL REFERENCES webhook_endpoints,
    message_id text NOT NULL,
    seq bigint NOT NULL,
    attempt int NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code int,
    error text,
    duration_ms int NOT NULL,
    delivered boolean NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempt_id);
CREATE INDEX webhook_attempts_time ON webhook_attempts (attempted_at);

-- What the gateway shows: never a secret.
CREATE VIEW contracts_read.webhook_endpoints AS
SELECT e.endpoint_id, e.contract_id, e.url, e.description, e.registered_by_key_id, e.registered_at, e.removed_at,
       e.delivered_seq, e.delivered_messages, e.failed_attempts, e.next_attempt_at, e.failing_since, e.last_error,
       e.previous_valid_until,
       (SELECT count(*) FROM contracts.ledger l WHERE l.contract_id = e.contract_id AND l.seq > e.delivered_seq)
           AS pending_messages
FROM contracts.webhook_endpoints e;

CREATE VIEW contracts_read.webhook_attempts AS
SELECT attempt_id, endpoint_id, message_id, seq, attempt, attempted_at, status_code, error, duration_ms, delivered
FROM contracts.webhook_attempts;
