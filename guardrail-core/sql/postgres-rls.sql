-- guardrail: PostgreSQL functions for row-level security policies that let PHI rows be read
-- and written only inside a guarded call.
--
-- Inside `#[phi_action(tx = ..)]` calls on an sqlx PostgreSQL transaction, guardrail runs
--   SELECT set_config('guardrail.action', $1, true),
--          set_config('guardrail.principal', $2, true),
--          set_config('guardrail.categories', $3, true)
-- (transaction-local, bound parameters) after the decision allowed the call and before its
-- body, and restores the previous values after the body. The categories are the action's
-- declared `phi = [..]` names, comma-separated. Outside such a call the settings are unset
-- or empty, and the functions below say "not in a guarded call".
--
-- Apply this file once per database, in the schema the policies will name (the functions
-- are created in the first schema of `search_path`). It is idempotent (CREATE OR REPLACE).
-- Then enable and FORCE row-level security on every PHI table and give it policies, as in
-- `postgres-rls-example.sql`. The functions only read settings: they need no privilege.
--
-- What this is: a tripwire against a forgotten guard (code that reads PHI without
-- `#[phi_action]` reads no rows). What it is not: authentication. Any session can set these
-- settings itself (`SET guardrail.action = ..`, `set_config`, or the connection's `options`),
-- a superuser or a role with BYPASSRLS ignores every policy, and the table owner does too
-- unless FORCE ROW LEVEL SECURITY is set. See docs/threat-model.md.

-- The running guarded call's action, or NULL outside one.
CREATE OR REPLACE FUNCTION guardrail_action() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('guardrail.action', true), '') $$;

-- The principal of the running guarded call, or NULL outside one.
CREATE OR REPLACE FUNCTION guardrail_principal() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN coalesce(current_setting('guardrail.action', true), '') <> ''
              THEN nullif(current_setting('guardrail.principal', true), '') END
$$;

-- True inside a guarded call (the action setting is set and not empty).
CREATE OR REPLACE FUNCTION guardrail_in_call() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('guardrail.action', true), '') <> '' $$;

-- True inside a guarded call that declared `category` in `phi = [..]`; false otherwise
-- (also for a NULL category).
CREATE OR REPLACE FUNCTION guardrail_has_category(category text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(
           current_setting('guardrail.action', true) <> ''
           AND category = ANY (string_to_array(
                 coalesce(current_setting('guardrail.categories', true), ''), ',')),
           false)
$$;

-- The policy function: false outside any guarded call (the row is invisible, no error, as
-- for any row a policy hides); true inside a call that declared `category`; inside a call
-- that did not declare it, an error (SQLSTATE 42501, insufficient_privilege) naming the
-- action, the category and `relation` (a label for the message, e.g. the table), so a
-- missing `phi = [..]` entry is loud rather than an empty result.
CREATE OR REPLACE FUNCTION guardrail_require_category(category text, relation text DEFAULT '')
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  running text := coalesce(current_setting('guardrail.action', true), '');
BEGIN
  IF running = '' THEN
    RETURN false;
  END IF;
  IF coalesce(category = ANY (string_to_array(
       coalesce(current_setting('guardrail.categories', true), ''), ',')), false) THEN
    RETURN true;
  END IF;
  RAISE EXCEPTION 'guardrail: action "%" did not declare PHI category "%" (reading %)',
      running, category, coalesce(nullif(relation, ''), 'a guarded table')
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'add the category to phi = [..] of the action';
END
$$;
