-- Aggregated (self-reported) figures: the current version of each submission key.
CREATE TABLE aggregate_submissions (
    submission_key text PRIMARY KEY,
    version int NOT NULL,
    provider_id text NOT NULL,
    measure_id text NOT NULL,
    measure_version int NOT NULL,
    period text NOT NULL,
    discharge_year int NOT NULL,
    discharge_quarter int,
    target_group text NOT NULL,
    care_type text,
    legal_basis text,
    sex text,
    age_band text,
    numerator int NOT NULL,
    denominator int NOT NULL,
    missing int NOT NULL,
    method text NOT NULL,
    channel text NOT NULL,
    submitted_at timestamptz NOT NULL
);
CREATE INDEX aggregate_submissions_measure ON aggregate_submissions (measure_id, discharge_year);

CREATE VIEW measures_read.self_reported AS
SELECT submission_key, version, provider_id, measure_id, measure_version, period, discharge_year, discharge_quarter,
       target_group, care_type, legal_basis, sex, age_band, numerator AS achieved,
       denominator - numerator AS not_achieved, missing, method, channel, submitted_at
FROM measures.aggregate_submissions;
