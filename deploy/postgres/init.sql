-- Roles and database for Compose (the local stack creates the same in utfall_platform.local.postgres).
CREATE ROLE utfall LOGIN CREATEROLE PASSWORD 'utfall';
CREATE ROLE utfall_reader NOLOGIN;
CREATE ROLE utfall_gateway LOGIN PASSWORD 'utfall_gateway' IN ROLE utfall_reader;
ALTER ROLE utfall_gateway SET default_transaction_read_only = on;
CREATE DATABASE utfall OWNER utfall;
\connect utfall
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
