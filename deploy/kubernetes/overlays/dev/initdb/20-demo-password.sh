#!/bin/sh
# Sourced by the postgres image after 10-demo.sql, on first start only: gives
# the demo role (read-only, created by 10-demo.sql) the password that the
# workers' Secret pgmcp-database carries. Development only.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=password="$(cat /var/run/secrets/postgres/pgmcp-demo-password)" <<'SQL'
ALTER ROLE pgmcp_demo PASSWORD :'password';
SQL
