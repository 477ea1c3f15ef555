-- Register extracts: each extract's coverage, and every version of every register row (its content as a
-- digest of the pseudonymised row: never a personnummer). Which version counts is decided from these.
CREATE TABLE register_extracts (
    register_id text NOT NULL,
    extract_id text NOT NULL,
    as_of date NOT NULL,
    coverage jsonb NOT NULL,
    complete boolean NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (register_id, extract_id)
);

CREATE TABLE register_rows (
    register_id text NOT NULL,
    record_id text NOT NULL,
    extract_id text NOT NULL,
    as_of date NOT NULL,
    digest text NOT NULL,
    receipt text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (register_id, record_id, extract_id)
);
