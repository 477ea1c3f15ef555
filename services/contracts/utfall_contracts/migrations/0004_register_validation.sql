-- A milestone validated by register is paid on the verified fact (`<measure>@register`); its outcome status is
-- that fact's. The view names each milestone's validation.
DROP VIEW contracts_read.participant_milestones;
CREATE VIEW contracts_read.participant_milestones AS
SELECT p.contract_id, p.provider_id, p.episode_id, p.status AS participant_status, ms.milestone_id, ms.measure_id,
       ms.price_ore, coalesce(f.status, 'no_outcome_yet') AS outcome_status,
       coalesce(s.active_amount_ore, 0) AS paid_ore, s.active_payment_id,
       coalesce(s.entitled_ore, 0) > coalesce(s.active_amount_ore, 0) AS blocked,
       coalesce(s.entitled_ore, 0) AS entitled_ore, f.outcome_date,
       coalesce(ms.validation, 'reported') AS validation
FROM contracts.participants p
JOIN contracts_read.contracts c ON c.contract_id = p.contract_id
CROSS JOIN LATERAL jsonb_to_recordset(c.definition->'milestones')
     AS ms(milestone_id text, measure_id text, price_ore bigint, validation text)
LEFT JOIN contracts.fact_status f ON f.provider_id = p.provider_id AND f.episode_id = p.episode_id
     AND f.measure_id = ms.measure_id || CASE WHEN ms.validation = 'register' THEN '@register' ELSE '' END
LEFT JOIN contracts.milestone_state s ON s.contract_id = p.contract_id AND s.provider_id = p.provider_id
     AND s.episode_id = p.episode_id AND s.milestone_id = ms.milestone_id;
