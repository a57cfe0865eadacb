-- guardrail: example row-level security for a clinic's PHI tables. Apply after
-- `postgres-rls.sql`, in the same schema. Adapt the table names and categories to yours:
-- one policy per PHI table, naming the category the table holds (a table whose columns
-- hold several categories names the one every reader must have declared, or is split, or
-- is read through a view; row-level security decides rows, not columns).
--
-- The application must connect as a role that is neither a superuser nor BYPASSRLS. With
-- FORCE ROW LEVEL SECURITY the policies bind the tables' owner too.

CREATE TABLE IF NOT EXISTS clinic_patients (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    birth_date date
);

CREATE TABLE IF NOT EXISTS clinic_charts (
    patient    text PRIMARY KEY REFERENCES clinic_patients (id),
    diagnosis  text NOT NULL
);

ALTER TABLE clinic_patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_patients FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic_charts ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_charts FORCE ROW LEVEL SECURITY;

-- Reads, inserts, updates and deletes need a guarded call that declared the category.
DROP POLICY IF EXISTS guardrail_guarded ON clinic_patients;
CREATE POLICY guardrail_guarded ON clinic_patients FOR ALL
    USING (guardrail_require_category('name', 'clinic_patients'))
    WITH CHECK (guardrail_require_category('name', 'clinic_patients'));

DROP POLICY IF EXISTS guardrail_guarded ON clinic_charts;
CREATE POLICY guardrail_guarded ON clinic_charts FOR ALL
    USING (guardrail_require_category('diagnosis', 'clinic_charts'))
    WITH CHECK (guardrail_require_category('diagnosis', 'clinic_charts'));
