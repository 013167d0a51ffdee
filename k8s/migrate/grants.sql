-- Each service's database role gets exactly its own tables, after the migrations created them
-- (run by the Job in job.yaml as the owner, role cutline, which owns every table). Repeatable:
-- GRANT and REVOKE of what is already so change nothing. The roles themselves are CloudNativePG
-- managed roles (k8s/components/postgres/cluster.yaml).
--
-- A new table in a migration needs its line here: test/k8s-operations.spec.ts reads every table
-- the migrations create and fails on one no role is granted.

-- Nobody but the owner creates objects, and no role reads what it was not given.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO cutline_gateway, cutline_billing, cutline_orchestrator;

-- gateway: API keys, batches, the monthly call counter, payments.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
  api_keys, batch_items, batches, gateway_monthly_calls,
  payment_customers, payment_events, payment_overage_reports, payment_purchases
  TO cutline_gateway;
GRANT SELECT ON TABLE gateway_migrations TO cutline_gateway;

-- billing: the ledger is append-only (a trigger refuses changes; the role may not even try).
GRANT SELECT, INSERT ON TABLE billing_ledger_entries TO cutline_billing;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
  billing_accounts, billing_buckets, billing_credit_accounts, billing_cycle_reports,
  billing_hold_allocations, billing_holds, billing_members, billing_outbox,
  billing_packs, billing_plans, billing_price_books
  TO cutline_billing;
GRANT SELECT ON TABLE billing_migrations TO cutline_billing;
-- Billing's SQL functions (reserve, settle, expiry) run with the caller's rights: billing only.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO cutline_billing;

-- orchestrator: jobs, webhooks, account settings, the email outbox.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
  account_settings, account_webhooks, email_outbox, jobs, webhook_attempts, webhook_deliveries
  TO cutline_orchestrator;
GRANT SELECT ON TABLE orchestrator_migrations TO cutline_orchestrator;

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
