-- The gateway's own schema: people's sessions and the audit trail. Its role (utfall_gateway, read-only by default)
-- writes here and nowhere else, through utfall_gateway_writer: sessions in full, the trail by INSERT only.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'utfall_gateway_writer') THEN
    CREATE ROLE utfall_gateway_writer NOLOGIN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'utfall_gateway')
     AND NOT pg_has_role('utfall_gateway', 'utfall_gateway_writer', 'MEMBER') THEN
    GRANT utfall_gateway_writer TO utfall_gateway;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- A sign-in under way (the authorization code flow): `state` is the key, bound to the browser by a cookie.
CREATE TABLE sign_ins (
    state_hash bytea PRIMARY KEY,
    code_verifier text NOT NULL,
    nonce text NOT NULL,
    next_path text NOT NULL,
    created_at timestamptz NOT NULL
);

-- A person's session: the cookie holds a random id; only its hash is kept.
CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    subject text NOT NULL,
    display_name text NOT NULL,
    claims jsonb NOT NULL,
    csrf_token text NOT NULL,
    id_token text NOT NULL,
    access_token text NOT NULL,      -- the latest, refreshed with the session: uploads go to ingest with it
    refresh_token text NOT NULL,
    created_at timestamptz NOT NULL,
    revalidated_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The audit trail: one chain per gateway instance, each entry carrying the hash of the one before.
CREATE TABLE audit_entries (
    chain text NOT NULL,
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,             -- person:<subject> or key:<key id> or public
    actor_name text,                 -- a person's display name from the token
    role text NOT NULL,
    scope jsonb NOT NULL,            -- the principal's provider, municipality, funder, contracts
    method text NOT NULL,
    route text NOT NULL,             -- the route's template, e.g. /v1/contracts/{contract_id}/statements
    path text NOT NULL,              -- the path and query asked
    contract_id text,
    provider_id text,
    period text,
    rows integer,
    client text,                     -- the client address
    outcome integer NOT NULL,        -- the HTTP status answered
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_entries_at ON audit_entries (at);
CREATE INDEX audit_entries_actor ON audit_entries (actor, at);
CREATE INDEX audit_entries_contract ON audit_entries (contract_id, at) WHERE contract_id IS NOT NULL;
CREATE INDEX audit_entries_provider ON audit_entries (provider_id, at) WHERE provider_id IS NOT NULL;

-- Where a chain starts after retention removed its oldest segments: the last removed entry's seq and hash.
CREATE TABLE audit_anchors (
    chain text PRIMARY KEY,
    through_seq bigint NOT NULL,
    through_hash bytea NOT NULL,
    removed_before timestamptz NOT NULL
);

GRANT USAGE ON SCHEMA gateway TO utfall_gateway_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON sign_ins, sessions TO utfall_gateway_writer;
GRANT SELECT, INSERT ON audit_entries TO utfall_gateway_writer;
GRANT SELECT ON audit_anchors TO utfall_gateway_writer;
