-- What pages show of a rule and its versions is kept in memory once read (db::catalog):
-- a rule's code, system, place and record kind, a version's rule, title, clause and
-- review flag. Those never change once written (new wording is a new version, taking
-- effect on its date), and neither row is ever deleted; the database now refuses both,
-- so that no kept copy can go stale. Other version columns (lead days, say) may change.
create function refuse_rule_text_change() returns trigger language plpgsql as $$
begin
    raise exception '% %: its code, wording and place never change and it is never deleted; add a version instead',
        tg_table_name, old.id using errcode = 'integrity_constraint_violation';
end $$;

create trigger rule_text_fixed before update on rule for each row
    when ((old.id, old.code, old.system_id, old.position, old.record_kind)
          is distinct from (new.id, new.code, new.system_id, new.position, new.record_kind))
    execute function refuse_rule_text_change();
create trigger rule_kept before delete on rule for each row execute function refuse_rule_text_change();

create trigger rule_version_text_fixed before update on rule_version for each row
    when ((old.id, old.rule_id, old.title, old.clause, old.needs_review)
          is distinct from (new.id, new.rule_id, new.title, new.clause, new.needs_review))
    execute function refuse_rule_text_change();
create trigger rule_version_kept before delete on rule_version for each row
    execute function refuse_rule_text_change();
