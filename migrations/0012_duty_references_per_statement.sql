-- A duty's organisation and rule period must exist. Declared as foreign keys, PostgreSQL
-- checks that once per duty row, with a query and a row lock each: on a first tick over
-- 100,000 organisations (1.34 million duties) that was 28 % of the machine's CPU
-- (36 CPU-s with the two keys, 26 without). The same rule now holds per statement: after an
-- insert, one query finds any new duty whose organisation or rule period is missing
-- and refuses the statement; and what a foreign key also guarded, the referenced row
-- going away or changing its key, is refused outright, since neither ever happens (an
-- organisation closes, it is not deleted; a rule period is kept forever). A duty's own
-- organisation, rule and period never change either.
alter table duty drop constraint duty_org_id_fkey, drop constraint duty_rule_id_period_key_fkey;

create function duty_references_exist() returns trigger language plpgsql as $$
declare
    bad record;
    n bigint;
begin
    -- EXECUTE, so that it is planned for the statement's number of rows (see
    -- duty_total_apply_delta).
    execute 'select n.org_id, n.rule_id, n.period_key
             from new_rows n
             where not exists (select 1 from org o where o.id = n.org_id)
             union all
             select n.org_id, n.rule_id, n.period_key
             from (select distinct on (rule_id, period_key) org_id, rule_id, period_key from new_rows) n
             where not exists (select 1 from rule_period rp
                               where rp.rule_id = n.rule_id and rp.period_key = n.period_key)
             limit 1' into bad;
    get diagnostics n = row_count;
    if n > 0 then
        raise exception 'insert on table "duty" violates its references: organisation % or rule period (%, %) does not exist',
            bad.org_id, bad.rule_id, bad.period_key using errcode = 'foreign_key_violation';
    end if;
    return null;
end $$;

create trigger duty_references after insert on duty referencing new table as new_rows
    for each statement execute function duty_references_exist();

create function refuse_reference_change() returns trigger language plpgsql as $$
begin
    raise exception '%: % (duties refer to it by its key, which never changes)',
        tg_table_name, case tg_op when 'UPDATE' then 'its key cannot change' else 'rows are never deleted' end
        using errcode = 'foreign_key_violation';
end $$;

create trigger duty_keys_fixed before update on duty for each row
    when ((old.org_id, old.rule_id, old.period_key) is distinct from (new.org_id, new.rule_id, new.period_key))
    execute function refuse_reference_change();

create trigger org_id_fixed before update on org for each row when (old.id <> new.id)
    execute function refuse_reference_change();
create trigger org_kept before delete on org for each row execute function refuse_reference_change();
create trigger org_not_truncated before truncate on org for each statement execute function refuse_reference_change();

create trigger rule_period_key_fixed before update on rule_period for each row
    when ((old.rule_id, old.period_key) is distinct from (new.rule_id, new.period_key))
    execute function refuse_reference_change();
create trigger rule_period_kept before delete on rule_period for each row execute function refuse_reference_change();
create trigger rule_period_not_truncated before truncate on rule_period for each statement
    execute function refuse_reference_change();
