-- Ingest's own state. Nothing here holds a personnummer: persons appear only as subject_ref.
CREATE TABLE received_events (
    source text NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    episode_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('accepted', 'held', 'expired')),
    channel text NOT NULL CHECK (channel IN ('http', 'kafka')),
    followup_month int,
    received_at timestamptz NOT NULL,
    retracted_by text,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE episodes (
    source text NOT NULL,
    episode_id text NOT NULL,
    subject_ref text,
    started_event_id text,
    start_date date,
    ended_event_id text,
    end_date date,
    followups jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (source, episode_id)
);

-- Events whose episode's placement.started has not arrived yet (their subject_ref is unknown).
CREATE TABLE held_events (
    source text NOT NULL,
    event_id text NOT NULL,
    episode_id text NOT NULL,
    type text NOT NULL,
    time timestamptz NOT NULL,
    fields jsonb NOT NULL,
    held_at timestamptz NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX held_events_episode ON held_events (source, episode_id);
CREATE INDEX held_events_age ON held_events (held_at);

-- The latest rejection of an event id, for the receipt lookup. Reasons never hold submitted values.
CREATE TABLE rejections (
    source text NOT NULL,
    event_id text NOT NULL,
    type text,
    channel text NOT NULL,
    reasons jsonb NOT NULL,
    rejected_at timestamptz NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE SCHEMA IF NOT EXISTS ingest_read;

CREATE VIEW ingest_read.event_receipts AS
SELECT r.source, r.event_id, r.type, r.episode_id,
       CASE WHEN r.status = 'expired' THEN 'rejected' ELSE 'accepted' END AS status,
       r.status = 'held' AS held, r.channel, r.received_at AS at, r.retracted_by, NULL::jsonb AS reasons
FROM ingest.received_events r
UNION ALL
SELECT j.source, j.event_id, j.type, NULL, 'rejected', false, j.channel, j.rejected_at, NULL, j.reasons
FROM ingest.rejections j
WHERE NOT EXISTS (SELECT 1 FROM ingest.received_events r WHERE r.source = j.source AND r.event_id = j.event_id);
