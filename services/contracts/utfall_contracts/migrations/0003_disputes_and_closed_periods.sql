-- Issue 19: disputes of payments (on hold until the commissioner resolves them), closed settlement periods,
-- and the outcome of every command on a ledger.
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (
    kind IN ('payment.triggered', 'payment.reversed', 'payment.disputed', 'payment.dispute_resolved'));
ALTER TABLE ledger ADD COLUMN dispute jsonb;

-- An upheld dispute disallows the milestone: it is entitled to nothing from then on.
ALTER TABLE milestone_state ADD COLUMN disallowed boolean NOT NULL DEFAULT false;

CREATE TABLE disputes (
    contract_id text NOT NULL,
    payment_id text PRIMARY KEY,  -- a payment is disputed at most once
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    milestone_id text NOT NULL,
    amount_ore bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'upheld', 'dismissed')),
    raised_by_role text NOT NULL,
    raised_by_key_id text NOT NULL,
    reason text NOT NULL,
    raised_at timestamptz NOT NULL,
    resolved_by_key_id text,
    resolution_reason text,
    resolved_at timestamptz
);
CREATE INDEX disputes_contract ON disputes (contract_id, raised_at);

CREATE TABLE closed_periods (
    contract_id text NOT NULL,
    period text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    opening_balance_ore bigint NOT NULL,
    net_ore bigint NOT NULL,
    closing_balance_ore bigint NOT NULL,
    entries int NOT NULL,
    last_seq bigint,  -- the last ledger entry the closed statement holds
    closed_by_key_id text NOT NULL,
    closed_at timestamptz NOT NULL,
    PRIMARY KEY (contract_id, period)
);

CREATE TABLE command_results (
    command_id text PRIMARY KEY,
    contract_id text NOT NULL,
    command text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('applied', 'refused')),
    detail text NOT NULL,
    entries int NOT NULL,
    decided_at timestamptz NOT NULL
);

CREATE OR REPLACE VIEW contracts_read.ledger AS
SELECT seq, entry_id, payment_id, kind, occurrence, contract_id, contract_version, milestone_id, measure_id,
       measure_version, subject_ref, provider_id, episode_id, amount_ore, signed_amount_ore, capped, evidence,
       determined_at, reason, dispute
FROM contracts.ledger;

CREATE VIEW contracts_read.disputes AS
SELECT contract_id, payment_id, provider_id, episode_id, milestone_id, amount_ore, status, raised_by_role,
       raised_by_key_id, reason, raised_at, resolved_by_key_id, resolution_reason, resolved_at
FROM contracts.disputes;

CREATE VIEW contracts_read.closed_periods AS
SELECT contract_id, period, period_start, period_end, opening_balance_ore, net_ore, closing_balance_ore, entries,
       last_seq, closed_by_key_id, closed_at
FROM contracts.closed_periods;

CREATE VIEW contracts_read.command_results AS
SELECT command_id, contract_id, command, outcome, detail, entries, decided_at FROM contracts.command_results;
