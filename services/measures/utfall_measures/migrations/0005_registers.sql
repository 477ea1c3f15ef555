-- Registers: the version of each register row that counts (the latest extract's), every coverage claim, and
-- each verifiable measure's verified fact beside the reported one.
CREATE TABLE register_records (
    register_id text NOT NULL,
    record_id text NOT NULL,
    extract_id text NOT NULL,
    as_of date NOT NULL,
    subject_ref text NOT NULL,
    kind text NOT NULL,
    body jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (register_id, record_id)
);
CREATE INDEX register_records_subject ON register_records (subject_ref);

CREATE TABLE register_coverage (
    register_id text NOT NULL,
    extract_id text NOT NULL,
    municipality_code text NOT NULL,
    kind text NOT NULL,
    covers_from date NOT NULL,
    covers_through date NOT NULL,
    PRIMARY KEY (register_id, extract_id, municipality_code, kind)
);

CREATE TABLE verified_facts (
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    measure_id text NOT NULL,
    subject_ref text NOT NULL,
    status text NOT NULL,
    reported_status text NOT NULL,
    outcome_date date,
    evidence jsonb NOT NULL,
    unit_id text,
    municipality_code text,
    county_code text,
    care_type text,
    legal_basis text,
    target_group text,
    sex text,
    age_at_start int,
    age_band text,
    start_date date,
    end_date date,
    discharge_year int,
    discharge_quarter int,
    determined_at timestamptz NOT NULL,
    PRIMARY KEY (provider_id, episode_id, measure_id)
);
CREATE INDEX verified_facts_measure ON verified_facts (measure_id, discharge_year);
CREATE INDEX episodes_municipality_end ON episodes (municipality_code, end_date);

CREATE VIEW measures_read.verified_facts AS
SELECT provider_id, episode_id, measure_id, status, reported_status, outcome_date, evidence, determined_at,
       unit_id, municipality_code, county_code, care_type, legal_basis, target_group, sex, age_at_start,
       age_band, start_date, end_date, discharge_year, discharge_quarter
FROM measures.verified_facts;

-- Decided verified outcomes are facts too (measure id `<measure>@register`, published on outcomes.v2 for
-- contracts that pay on the register's word); the results read the reported facts only.
CREATE OR REPLACE VIEW measures_read.outcome_facts AS
SELECT provider_id, episode_id, measure_id, measure_version, status, revision, evidence, determined_at,
       unit_id, municipality_code, county_code, care_type, legal_basis, target_group, sex, age_at_start,
       age_band, start_date, end_date, discharge_year, discharge_quarter, outcome_date
FROM measures.facts WHERE status <> 'void' AND measure_id NOT LIKE '%@%';

-- A verified fact may say `excluded` (a death or emigration the register holds).
ALTER TABLE facts DROP CONSTRAINT facts_status_check;
ALTER TABLE facts ADD CONSTRAINT facts_status_check
    CHECK (status IN ('achieved', 'not_achieved', 'missing', 'pending', 'void', 'excluded'));

-- Signals of data errors: how long events take to arrive, counted per provider and day of lag (the event's own
-- date to its arrival).
CREATE VIEW measures_read.reporting_lag AS
SELECT provider_id,
       (ingested_at AT TIME ZONE 'UTC')::date
           - coalesce((data->>'assessed_on')::date, (data->>'end_date')::date, (data->>'start_date')::date)
           AS lag_days,
       count(*) AS events
FROM measures.events
WHERE ingested_at IS NOT NULL AND type <> 'se.utfall.event.retracted.v1'
GROUP BY 1, 2;
