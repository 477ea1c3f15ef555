-- Payments follow from the facts alone (issue 15): each milestone's entitlement under the per-participant
-- cap and its payment order (outcome date, first payment id) are kept, so the total cap is allocated first
-- determined, first paid, whatever the arrival order. "Blocked" is now derived: entitled beyond what is paid.
DROP VIEW contracts_read.participant_milestones;
DROP INDEX milestone_state_blocked;
ALTER TABLE milestone_state
    DROP COLUMN blocked,
    DROP COLUMN blocked_at,
    ADD COLUMN entitled_ore bigint NOT NULL DEFAULT 0,
    ADD COLUMN order_date date,
    ADD COLUMN order_payment_id text;
UPDATE milestone_state SET entitled_ore = active_amount_ore;  -- until the reallocation below has run
CREATE INDEX milestone_state_order ON milestone_state (contract_id, order_date, order_payment_id)
    WHERE entitled_ore > 0 OR active_amount_ore > 0;
CREATE INDEX milestone_state_unsettled ON milestone_state (contract_id) WHERE active_amount_ore <> entitled_ore;

ALTER TABLE contract_totals ADD COLUMN entitled_ore bigint NOT NULL DEFAULT 0;
UPDATE contract_totals t SET entitled_ore = coalesce(
    (SELECT sum(m.entitled_ore) FROM milestone_state m WHERE m.contract_id = t.contract_id), 0);

ALTER TABLE fact_status ADD COLUMN outcome_date date;

-- Contracts whose every participant is re-entitled and re-allocated when the service next starts: all that
-- exist when this migration runs (their state predates the rule).
CREATE TABLE pending_reallocation (contract_id text PRIMARY KEY);
INSERT INTO pending_reallocation SELECT DISTINCT contract_id FROM contract_versions;

CREATE VIEW contracts_read.participant_milestones AS
SELECT p.contract_id, p.provider_id, p.episode_id, p.status AS participant_status, ms.milestone_id, ms.measure_id,
       ms.price_ore, coalesce(f.status, 'no_outcome_yet') AS outcome_status,
       coalesce(s.active_amount_ore, 0) AS paid_ore, s.active_payment_id,
       coalesce(s.entitled_ore, 0) > coalesce(s.active_amount_ore, 0) AS blocked,
       coalesce(s.entitled_ore, 0) AS entitled_ore, f.outcome_date
FROM contracts.participants p
JOIN contracts_read.contracts c ON c.contract_id = p.contract_id
CROSS JOIN LATERAL jsonb_to_recordset(c.definition->'milestones') AS ms(milestone_id text, measure_id text, price_ore bigint)
LEFT JOIN contracts.fact_status f ON f.provider_id = p.provider_id AND f.episode_id = p.episode_id
     AND f.measure_id = ms.measure_id
LEFT JOIN contracts.milestone_state s ON s.contract_id = p.contract_id AND s.provider_id = p.provider_id
     AND s.episode_id = p.episode_id AND s.milestone_id = ms.milestone_id;
