-- Set while a rebuild is under way; a service that starts and finds it replays from the beginning.
CREATE TABLE rebuild_marker (
    id int PRIMARY KEY CHECK (id = 1),
    started_at timestamptz NOT NULL
);
