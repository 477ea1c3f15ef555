-- Arrival order does not change the result (issue 15): an episode may have several live starts or ends
-- while a correction is in flight, and a retraction may wait for the event it retracts.
ALTER TABLE received_events ALTER COLUMN episode_id DROP NOT NULL;

ALTER TABLE episodes
    ADD COLUMN starts jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN ends jsonb NOT NULL DEFAULT '[]';
-- Rows written before this migration hold one live start and end each; their event time was not kept, so
-- they sort before any later candidate (only the subject binding uses that order).
UPDATE episodes SET
    starts = CASE WHEN started_event_id IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object(
        'event_id', started_event_id, 'time', '1970-01-01T00:00:00+00:00', 'day', start_date,
        'subject_ref', subject_ref)) END,
    ends = CASE WHEN ended_event_id IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object(
        'event_id', ended_event_id, 'time', '1970-01-01T00:00:00+00:00', 'day', end_date)) END;
ALTER TABLE episodes
    DROP COLUMN started_event_id,
    DROP COLUMN start_date,
    DROP COLUMN ended_event_id,
    DROP COLUMN end_date,
    DROP COLUMN followups;

ALTER TABLE held_events
    ALTER COLUMN episode_id DROP NOT NULL,
    ADD COLUMN awaits_event_id text,
    ADD CONSTRAINT held_events_waits_for_one CHECK ((episode_id IS NULL) <> (awaits_event_id IS NULL));
CREATE INDEX held_events_awaits ON held_events (source, awaits_event_id) WHERE awaits_event_id IS NOT NULL;
