-- Each service's database role gets exactly its own tables, after the migrations created them
-- (run by the Job in job.yaml as the owner, role cutline, which owns every table). Repeatable:
-- GRANT and REVOKE of what is already so change nothing. The roles themselves are CloudNativePG
-- managed roles (k8s/components/postgres/cluster.yaml).
--
-- A new table in a migration needs its row below: test/k8s-operations.spec.ts reads every table
-- the migrations create and fails on one that no role, or two, is granted. A row whose table does
-- not exist (yet, in an older release's database) is skipped.

-- Nobody but the owner creates objects, and no role reads what it was not given.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO cutline_gateway, cutline_billing, cutline_orchestrator;

BEGIN;
CREATE TEMPORARY TABLE table_grants (role name, table_name name, privileges text) ON COMMIT DROP;
INSERT INTO table_grants (role, table_name, privileges) VALUES
  -- gateway: API keys, batches, the monthly call counter, the shared rate limiter, payments.
  ('cutline_gateway', 'api_keys', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'batch_items', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'batches', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'gateway_monthly_calls', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'gateway_request_rates', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'payment_customers', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'payment_events', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'payment_overage_reports', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'payment_purchases', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_gateway', 'gateway_migrations', 'SELECT'),
  -- billing: the ledger is append-only (a trigger refuses changes; the role may not even try).
  ('cutline_billing', 'billing_ledger_entries', 'SELECT, INSERT'),
  ('cutline_billing', 'billing_accounts', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_buckets', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_credit_accounts', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_cycle_grants', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_cycle_reports', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_grant_refunds', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_hold_allocations', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_holds', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_members', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_outbox', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_packs', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_plans', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_price_books', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_billing', 'billing_migrations', 'SELECT'),
  -- orchestrator: jobs, webhooks, account settings, the email outbox.
  ('cutline_orchestrator', 'account_settings', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'account_webhooks', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'email_outbox', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'jobs', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'webhook_attempts', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'webhook_deliveries', 'SELECT, INSERT, UPDATE, DELETE'),
  ('cutline_orchestrator', 'orchestrator_migrations', 'SELECT');

DO $$
DECLARE
  grant_row record;
BEGIN
  FOR grant_row IN SELECT role, table_name, privileges FROM table_grants WHERE to_regclass(format('public.%I', table_name)) IS NOT NULL LOOP
    EXECUTE format('GRANT %s ON TABLE public.%I TO %I', grant_row.privileges, grant_row.table_name, grant_row.role);
  END LOOP;
END
$$;
COMMIT;

-- Billing's SQL functions (reserve, settle, expiry) run with the caller's rights: billing only.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO cutline_billing;

-- Sequences behind serial and identity columns follow their table's role.
DO $$
DECLARE
  grant_row record;
BEGIN
  FOR grant_row IN
    SELECT DISTINCT sequence_name.relname AS sequence, grantee.rolname AS role
    FROM pg_class sequence_name
    JOIN pg_depend dependency ON dependency.objid = sequence_name.oid AND dependency.deptype IN ('a', 'i')
    JOIN pg_class owner_table ON owner_table.oid = dependency.refobjid
    JOIN LATERAL aclexplode(owner_table.relacl) acl ON acl.privilege_type = 'INSERT'
    JOIN pg_roles grantee ON grantee.oid = acl.grantee
    WHERE sequence_name.relkind = 'S' AND grantee.rolname LIKE 'cutline\_%'
  LOOP
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I TO %I', grant_row.sequence, grant_row.role);
  END LOOP;
END
$$;
