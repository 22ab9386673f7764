-- A rule waived for one organisation (with a reason): every duty it owes under that rule,
-- from the waiver on, is waived.
create table rule_waiver (
    id         bigint generated always as identity primary key,
    rule_id    bigint not null references rule (id),
    org_id     bigint not null references org (id),
    reason     text not null check (length(reason) between 1 and 1000),
    created_by bigint references app_user (id),
    created_at timestamptz not null,
    unique (rule_id, org_id)
);

-- owed_duty now also says whether the duty is waived by a rule waiver.
drop view owed_duty;
create view owed_duty as
select o.id as org_id, rp.rule_id, null::bigint as person_id, rp.period_key, rp.required, rp.due_at,
       (o.active_until is not null and o.active_until < rp.period_end - 1) as cancelled,
       w.reason as waived_reason, w.created_by as waived_by, w.created_at as waived_at
from rule_period rp
join rule r on r.id = rp.rule_id and r.binds = 'organisation'
join rule_version v on v.id = rp.version_id and not v.retired
join rule_version_kind vk on vk.version_id = v.id
join org o on o.kind = vk.kind
    and o.active_from <= rp.period_start
    and (o.active_until is null or o.active_until >= rp.period_start)
left join org root on root.id = v.root_org_id
left join rule_waiver w on w.rule_id = rp.rule_id and w.org_id = o.id
where v.root_org_id is null or (o.path >= root.path and o.path < subtree_upper(root.path))
union all
select o.id, rp.rule_id, m.person_id, rp.period_key, rp.required, rp.due_at,
       (o.active_until is not null and o.active_until < rp.period_end - 1),
       w.reason, w.created_by, w.created_at
from rule_period rp
join rule r on r.id = rp.rule_id and r.binds = 'each_member'
join rule_version v on v.id = rp.version_id and not v.retired
join rule_version_kind vk on vk.version_id = v.id
join org o on o.kind = vk.kind
    and o.active_from <= rp.period_start
    and (o.active_until is null or o.active_until >= rp.period_start)
join (select distinct org_id, person_id, starts_on, ends_on from role_assignment
      where role = 'member' and not acting) m
    on m.org_id = o.id and m.starts_on <= rp.period_start
    and (m.ends_on is null or m.ends_on >= rp.period_start)
left join org root on root.id = v.root_org_id
left join rule_waiver w on w.rule_id = rp.rule_id and w.org_id = o.id
where v.root_org_id is null or (o.path >= root.path and o.path < subtree_upper(root.path));
