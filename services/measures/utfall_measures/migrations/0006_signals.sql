-- Signals of gaming, each against the provider's own history (per discharge year): how many discharges it
-- reports as planned, and how many 12-month follow-ups arrive in the last 30 days before the measure gives up
-- on them (the window plus its 60 days' grace).
CREATE VIEW measures_read.discharge_reasons AS
SELECT provider_id, discharge_year,
       count(*) FILTER (WHERE end_reason = 'planned') AS planned,
       count(*) AS discharges
FROM measures.episodes
WHERE end_date IS NOT NULL AND end_reason IS NOT NULL AND discharge_year IS NOT NULL
GROUP BY 1, 2;

CREATE VIEW measures_read.followup_timing AS
SELECT ep.provider_id, ep.discharge_year,
       count(*) FILTER (
           WHERE ((ep.end_date + interval '12 months')::date + 60) - (ev.ingested_at AT TIME ZONE 'UTC')::date
                 BETWEEN 0 AND 30
       ) AS near_deadline,
       count(*) AS followups
FROM measures.events ev
JOIN measures.episodes ep ON ep.provider_id = ev.provider_id AND ep.episode_id = ev.episode_id
WHERE ev.type = 'se.utfall.followup.recorded.v1'
  AND (ev.data->>'followup_month')::int = 12
  AND ev.ingested_at IS NOT NULL
  AND ep.end_date IS NOT NULL AND ep.discharge_year IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM measures.events r
      WHERE r.provider_id = ev.provider_id AND r.type = 'se.utfall.event.retracted.v1'
        AND r.data->>'retracted_event_id' = ev.event_id
  )
GROUP BY 1, 2;
