-- The day the evidence settled a fact (issue 15): contracts pay "first determined, first paid" in this order.
ALTER TABLE facts ADD COLUMN outcome_date date;
CREATE OR REPLACE VIEW measures_read.outcome_facts AS
SELECT provider_id, episode_id, measure_id, measure_version, status, revision, evidence, determined_at,
       unit_id, municipality_code, county_code, care_type, legal_basis, target_group, sex, age_at_start,
       age_band, start_date, end_date, discharge_year, discharge_quarter, outcome_date
FROM measures.facts WHERE status <> 'void';
