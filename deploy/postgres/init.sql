-- Roles and database for Compose (the local stack creates the same in utfall_platform.local.postgres).
CREATE ROLE utfall LOGIN CREATEROLE PASSWORD 'utfall';
CREATE ROLE utfall_reader NOLOGIN;
CREATE ROLE utfall_gateway LOGIN PASSWORD 'utfall_gateway' IN ROLE utfall_reader;
ALTER ROLE utfall_gateway SET default_transaction_read_only = on;
-- the gateway's own schema (sessions, the audit trail: INSERT only), granted by its migration too
CREATE ROLE utfall_gateway_writer NOLOGIN;
GRANT utfall_gateway_writer TO utfall_gateway;
CREATE DATABASE utfall OWNER utfall;
\connect utfall
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
