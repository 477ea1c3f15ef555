-- Verified outcomes as results: each verifiable measure's verified counterpart (`<id>@register`, listed in the
-- catalogue beside it) is counted from the verified facts (by the base measure id, so the index serves), in
-- the results' vocabulary: `excluded` where reported results count `missing` (neither is in the observed
-- rate) and `unverified` where they count `pending` (not decided yet). The gateway names them excluded and
-- unverified in every answer.
CREATE VIEW measures_read.verified_outcomes AS
SELECT provider_id, episode_id, measure_id,
       CASE status WHEN 'excluded' THEN 'missing' WHEN 'unverified' THEN 'pending' ELSE status END AS status,
       unit_id, municipality_code, county_code, care_type, legal_basis, target_group, sex, age_at_start,
       age_band, start_date, end_date, discharge_year, discharge_quarter, outcome_date
FROM measures.verified_facts;
