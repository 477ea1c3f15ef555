-- Measures' projection: every care event it has seen, episodes folded from them, and outcome facts.
CREATE TABLE events (
    source text NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    subject_ref text NOT NULL,
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    time timestamptz NOT NULL,
    data jsonb NOT NULL,
    ingested_at timestamptz,
    projected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX events_subject ON events (subject_ref);
CREATE INDEX events_episode ON events (provider_id, episode_id);

CREATE TABLE episodes (
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    subject_ref text NOT NULL,
    unit_id text,
    municipality_code text,
    county_code text,
    care_type text,
    legal_basis text,
    target_group text,
    sex text,
    birth_year int,
    age_at_start int,
    age_band text,
    start_date date,
    end_date date,
    end_reason text,
    destination text,
    length_of_stay_days int,
    discharge_year int,
    discharge_quarter int,
    data_errors text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (provider_id, episode_id)
);
CREATE INDEX episodes_subject ON episodes (subject_ref);

CREATE TABLE facts (
    provider_id text NOT NULL,
    episode_id text NOT NULL,
    measure_id text NOT NULL,
    measure_version int NOT NULL,
    subject_ref text NOT NULL,
    status text NOT NULL CHECK (status IN ('achieved', 'not_achieved', 'missing', 'pending', 'void')),
    revision int NOT NULL,
    evidence jsonb NOT NULL,
    closes_on date,
    determined_at timestamptz NOT NULL,
    unit_id text NOT NULL,
    municipality_code text NOT NULL,
    county_code text NOT NULL,
    care_type text NOT NULL,
    legal_basis text NOT NULL,
    target_group text NOT NULL,
    sex text NOT NULL,
    age_at_start int NOT NULL,
    age_band text NOT NULL,
    start_date date NOT NULL,
    end_date date NOT NULL,
    discharge_year int NOT NULL,
    discharge_quarter int NOT NULL,
    PRIMARY KEY (provider_id, episode_id, measure_id)
);
CREATE INDEX facts_pending ON facts (closes_on) WHERE status = 'pending';
CREATE INDEX facts_measure_year ON facts (measure_id, discharge_year);

CREATE TABLE measure_catalogue (
    id text NOT NULL,
    version int NOT NULL,
    kind text NOT NULL,
    title_sv text NOT NULL,
    title_en text NOT NULL,
    definition_sv text NOT NULL,
    definition_en text NOT NULL,
    window_months int,
    grace_days int NOT NULL,
    source_fields text[] NOT NULL,
    is_current boolean NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE SCHEMA IF NOT EXISTS measures_read;

CREATE VIEW measures_read.outcome_facts AS
SELECT provider_id, episode_id, measure_id, measure_version, status, revision, evidence, determined_at,
       unit_id, municipality_code, county_code, care_type, legal_basis, target_group, sex, age_at_start,
       age_band, start_date, end_date, discharge_year, discharge_quarter
FROM measures.facts WHERE status <> 'void';

CREATE VIEW measures_read.episodes AS
SELECT provider_id, episode_id, unit_id, municipality_code, county_code, care_type, legal_basis, target_group,
       sex, age_at_start, age_band, start_date, end_date, end_reason, destination, length_of_stay_days,
       discharge_year, discharge_quarter, data_errors, updated_at
FROM measures.episodes;

CREATE VIEW measures_read.measure_catalogue AS
SELECT id, version, kind, title_sv, title_en, definition_sv, definition_en, window_months, grace_days,
       source_fields, is_current
FROM measures.measure_catalogue;

CREATE VIEW measures_read.data_errors AS
SELECT provider_id, unnest(data_errors) AS error, count(*) AS episodes
FROM measures.episodes WHERE cardinality(data_errors) > 0 GROUP BY 1, 2;

CREATE VIEW measures_read.event_status AS
SELECT source, event_id, type, provider_id, episode_id, projected_at FROM measures.events;
