-- `duty_total` held, for every organisation, the totals of its whole subtree, itself
-- included. Nineteen organisations in twenty are leaves, so most of its rows repeated an
-- organisation's own duties, and a first tick wrote as many total rows as duties (half
-- its time). It now holds the totals of an organisation's descendants only, so a leaf has
-- none; `subtree_total` adds the organisation's own duties back, read from `duty` by
-- `duty_identity` (org_id, period_key, ...), and is what readers use.

create or replace function duty_total_apply_delta() returns trigger language plpgsql as $$
begin
    -- Deltas of the statement's changed rows, counted per parent first (a handful of
    -- groups for a whole rule period), then added to the parent and each of its
    -- ancestors. Rows are locked in one order (ancestors by id) so that concurrent
    -- writers cannot deadlock.
    --
    -- Run with EXECUTE, so that each statement is planned for the number of rows it
    -- changed: a plan kept from a one-row change (nested loops over the transition
    -- tables) took 81 s for a 20,000-row update; one kept from a first tick's insert
    -- hashes the whole org table for every one-row change.
    if tg_op in ('INSERT', 'DELETE') then
        -- Inserted rows count up, deleted rows down.
        execute format('insert into duty_total as t (org_id, rule_id, period_key, class, n)
        select a.org_id, g.rule_id, g.period_key, g.class, %s sum(g.n)
        from (select o.parent_id, d.rule_id, d.period_key, d.class, count(*) as n
              from %I d join org o on o.id = d.org_id
              where o.parent_id is not null
              group by 1, 2, 3, 4) g
        join org p on p.id = g.parent_id cross join unnest(p.path) as a(org_id)
        group by 1, 2, 3, 4 order by 1, 2, 3, 4
        on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n',
            case tg_op when 'INSERT' then '' else '-' end,
            case tg_op when 'INSERT' then 'new_rows' else 'old_rows' end);
    else
        execute 'insert into duty_total as t (org_id, rule_id, period_key, class, n)
        select a.org_id, g.rule_id, g.period_key, g.class, sum(g.delta)
        from (select o.parent_id, c.rule_id, c.period_key, c.class, sum(c.delta) as delta
              from (select n.org_id, n.rule_id, n.period_key, n.class, 1 as delta
                    from new_rows n join old_rows o using (id) where n.class <> o.class
                    union all
                    select o.org_id, o.rule_id, o.period_key, o.class, -1
                    from new_rows n join old_rows o using (id) where n.class <> o.class) c
              join org o on o.id = c.org_id
              where o.parent_id is not null
              group by 1, 2, 3, 4) g
        join org p on p.id = g.parent_id cross join unnest(p.path) as a(org_id)
        group by 1, 2, 3, 4 having sum(g.delta) <> 0 order by 1, 2, 3, 4
        on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n';
    end if;
    return null;
end $$;

-- Recount the descendants' totals from the duties.
delete from duty_total;
insert into duty_total (org_id, rule_id, period_key, class, n)
select a.org_id, d.rule_id, d.period_key, d.class, count(*)
from duty d join org o on o.id = d.org_id join org p on p.id = o.parent_id
cross join unnest(p.path) as a(org_id)
group by 1, 2, 3, 4;

-- Per-subtree totals, the organisation itself included: its descendants' totals and its
-- own duties, one row each per (organisation, rule, period, class) present; readers sum.
-- Filters on org_id and period_key reach both branches (the second through its grouping).
create view subtree_total as
select org_id, rule_id, period_key, class, n from duty_total
union all
select org_id, rule_id, period_key, class, count(*) from duty group by org_id, rule_id, period_key, class;
