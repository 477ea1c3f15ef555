-- Contracts: versions, enrolment, the outcome facts it has seen, milestone state and the append-only ledger.
CREATE TABLE contract_versions (
    contract_id text NOT NULL,
    version int NOT NULL,
    definition jsonb NOT NULL,
    definition_sha256 text NOT NULL,
    origin text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (contract_id, version)
);

CREATE TABLE placements (
    source text NOT NULL,
    event_id text NOT NULL,
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    subject_ref text NOT NULL,
    municipality_code text NOT NULL,
    care_type text NOT NULL,
    legal_basis text NOT NULL,
    target_group text NOT NULL,
    age_at_start int NOT NULL,
    start_date date NOT NULL,
    time timestamptz NOT NULL,
    retracted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX placements_episode ON placements (provider_id, episode_id);

-- Retractions seen before the event they retract (different partitions may deliver out of order).
CREATE TABLE retractions (
    source text NOT NULL,
    retracted_event_id text NOT NULL,
    PRIMARY KEY (source, retracted_event_id)
);

CREATE TABLE fact_status (
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    measure_id text NOT NULL,
    measure_version int NOT NULL,
    subject_ref text NOT NULL,
    status text NOT NULL,
    revision int NOT NULL,
    evidence jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (provider_id, episode_id, measure_id)
);

CREATE TABLE participants (
    contract_id text NOT NULL,
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    subject_ref text NOT NULL,
    status text NOT NULL CHECK (status IN ('enrolled', 'withdrawn')),
    contract_version int NOT NULL,
    municipality_code text NOT NULL,
    care_type text NOT NULL,
    legal_basis text NOT NULL,
    target_group text NOT NULL,
    age_at_start int NOT NULL,
    start_date date NOT NULL,
    enrolled_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (contract_id, provider_id, episode_id)
);
CREATE INDEX participants_episode ON participants (provider_id, episode_id);

CREATE TABLE milestone_state (
    contract_id text NOT NULL,
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    milestone_id text NOT NULL,
    occurrences int NOT NULL DEFAULT 0,
    active_payment_id text,
    active_amount_ore bigint NOT NULL DEFAULT 0,
    blocked boolean NOT NULL DEFAULT false,
    blocked_at timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (contract_id, provider_id, episode_id, milestone_id)
);
CREATE INDEX milestone_state_blocked ON milestone_state (contract_id, blocked_at) WHERE blocked;

CREATE TABLE contract_totals (
    contract_id text PRIMARY KEY,
    paid_net_ore bigint NOT NULL DEFAULT 0
);

-- Append-only. A payment id is triggered at most once and reversed at most once.
CREATE TABLE ledger (
    seq bigserial UNIQUE,
    entry_id text PRIMARY KEY,
    payment_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('payment.triggered', 'payment.reversed')),
    occurrence int NOT NULL,
    contract_id text NOT NULL,
    contract_version int NOT NULL,
    milestone_id text NOT NULL,
    measure_id text NOT NULL,
    measure_version int NOT NULL,
    subject_ref text NOT NULL,
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    amount_ore bigint NOT NULL CHECK (amount_ore >= 0),
    signed_amount_ore bigint NOT NULL,
    capped boolean NOT NULL,
    evidence jsonb NOT NULL,
    determined_at timestamptz NOT NULL,
    reason text,
    UNIQUE (payment_id, kind)
);
CREATE INDEX ledger_contract ON ledger (contract_id, seq);
CREATE INDEX ledger_episode ON ledger (provider_id, episode_id);

CREATE RULE ledger_no_update AS ON UPDATE TO ledger DO INSTEAD NOTHING;
CREATE RULE ledger_no_delete AS ON DELETE TO ledger DO INSTEAD NOTHING;

CREATE SCHEMA IF NOT EXISTS contracts_read;

CREATE VIEW contracts_read.contracts AS
SELECT v.contract_id, v.version, v.definition, v.created_at AS version_created_at,
       v.definition->>'name' AS name, v.definition->>'commissioner_municipality' AS commissioner_municipality,
       v.definition->>'funder' AS funder,
       ARRAY(SELECT jsonb_array_elements_text(v.definition->'provider_ids')) AS provider_ids,
       (v.definition->>'per_participant_cap_ore')::bigint AS per_participant_cap_ore,
       (v.definition->>'total_cap_ore')::bigint AS total_cap_ore,
       coalesce(t.paid_net_ore, 0) AS paid_net_ore,
       (v.definition->>'total_cap_ore')::bigint - coalesce(t.paid_net_ore, 0) AS cap_left_ore,
       (SELECT count(*) FROM contracts.participants p WHERE p.contract_id = v.contract_id AND p.status = 'enrolled')
           AS participants,
       (SELECT count(*) FROM contracts.ledger l WHERE l.contract_id = v.contract_id AND l.kind = 'payment.triggered')
           AS payments_triggered,
       (SELECT count(*) FROM contracts.ledger l WHERE l.contract_id = v.contract_id AND l.kind = 'payment.reversed')
           AS payments_reversed
FROM contracts.contract_versions v
LEFT JOIN contracts.contract_totals t USING (contract_id)
WHERE v.version = (SELECT max(version) FROM contracts.contract_versions w WHERE w.contract_id = v.contract_id);

CREATE VIEW contracts_read.contract_versions AS
SELECT contract_id, version, definition, origin, created_at FROM contracts.contract_versions;

CREATE VIEW contracts_read.participants AS
SELECT p.contract_id, p.provider_id, p.episode_id, p.subject_ref, p.status, p.contract_version,
       p.municipality_code, p.care_type, p.legal_basis, p.target_group, p.age_at_start, p.start_date,
       p.enrolled_at, p.updated_at,
       coalesce((SELECT sum(m.active_amount_ore) FROM contracts.milestone_state m WHERE m.contract_id = p.contract_id
                 AND m.provider_id = p.provider_id AND m.episode_id = p.episode_id), 0) AS paid_net_ore
FROM contracts.participants p;

CREATE VIEW contracts_read.participant_milestones AS
SELECT p.contract_id, p.provider_id, p.episode_id, p.status AS participant_status, ms.milestone_id, ms.measure_id,
       ms.price_ore, coalesce(f.status, 'no_outcome_yet') AS outcome_status,
       coalesce(s.active_amount_ore, 0) AS paid_ore, s.active_payment_id, coalesce(s.blocked, false) AS blocked
FROM contracts.participants p
JOIN contracts_read.contracts c ON c.contract_id = p.contract_id
CROSS JOIN LATERAL jsonb_to_recordset(c.definition->'milestones') AS ms(milestone_id text, measure_id text, price_ore bigint)
LEFT JOIN contracts.fact_status f ON f.provider_id = p.provider_id AND f.episode_id = p.episode_id
     AND f.measure_id = ms.measure_id
LEFT JOIN contracts.milestone_state s ON s.contract_id = p.contract_id AND s.provider_id = p.provider_id
     AND s.episode_id = p.episode_id AND s.milestone_id = ms.milestone_id;

CREATE VIEW contracts_read.ledger AS
SELECT seq, entry_id, payment_id, kind, occurrence, contract_id, contract_version, milestone_id, measure_id,
       measure_version, subject_ref, provider_id, episode_id, amount_ore, signed_amount_ore, capped, evidence,
       determined_at, reason
FROM contracts.ledger;
