-- Aggregated submissions: every version kept; the highest version of a key is the current one.
CREATE TABLE aggregate_submissions (
    submission_key text NOT NULL,
    version int NOT NULL,
    provider_id text NOT NULL,
    figures jsonb NOT NULL,
    channel text NOT NULL,
    submitted_at timestamptz NOT NULL,
    PRIMARY KEY (submission_key, version)
);
CREATE INDEX aggregate_submissions_provider ON aggregate_submissions (provider_id, submitted_at);
