-- A duty's rule is already pinned by its rule period: (rule_id, period_key) references
-- rule_period, whose rule_id references rule. The direct duty.rule_id -> rule key checked
-- the same thing a second time on every one of the million rows a first tick inserts.
alter table duty drop constraint duty_rule_id_fkey;
