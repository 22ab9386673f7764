-- The whole schema of the portal. Every rule the domain implies that the database can
-- hold is held here: foreign keys, checks, uniqueness. Instants come from the
-- application's clock, never from now(), so no column defaults to now().

-- Deployment settings: time zone, reminder leads, attachment limits, mail.
create table setting (
    key   text primary key check (key ~ '^[a-z_]+$'),
    value jsonb not null
);

create table org_kind (
    code    text primary key check (code ~ '^[a-z][a-z0-9_]{0,39}$'),
    name_zh text not null check (length(name_zh) between 1 and 50),
    name_en text not null check (length(name_en) between 1 and 80),
    builtin boolean not null default false,
    position int not null default 100
);

insert into org_kind (code, name_zh, name_en, builtin, position) values
    ('group_committee', '集团党委', 'Group committee', true, 1),
    ('committee', '党委', 'Committee', true, 2),
    ('branch', '党支部', 'Branch', true, 3),
    ('school_branch', '学校党支部', 'School branch', true, 4),
    ('office', '职能部门', 'Office', true, 5);

-- The organisation tree. `path` holds the ids from the root down to the organisation
-- itself; arrays compare element by element, so a subtree is the btree range
-- [path, subtree_upper(path)) and comes out in depth-first order.
create table org (
    id           bigint generated always as identity primary key,
    code         text not null unique check (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name         text not null check (length(name) between 1 and 200),
    kind         text not null references org_kind (code),
    parent_id    bigint references org (id),
    path         bigint[] not null,
    active_from  date not null,
    active_until date,
    created_at   timestamptz not null,
    check (active_until is null or active_until >= active_from),
    check (cardinality(path) between 1 and 32),
    check (path[cardinality(path)] = id),
    check ((parent_id is null) = (cardinality(path) = 1)),
    check (parent_id is null or path[cardinality(path) - 1] = parent_id)
);
create index org_path on org (path);
create index org_parent on org (parent_id, code);
create index org_name on org (name);

-- A new organisation's path is its parent's path and its own id.
create function org_set_path() returns trigger language plpgsql as $$
begin
    if new.parent_id is null then
        new.path := array[new.id];
    else
        new.path := (select path from org where id = new.parent_id) || new.id;
    end if;
    return new;
end $$;

create trigger org_path_on_insert before insert on org
    for each row execute function org_set_path();

-- The first path after every path of the subtree rooted at `p`.
create function subtree_upper(p bigint[]) returns bigint[]
    language sql immutable strict parallel safe
    return p[1:cardinality(p) - 1] || (p[cardinality(p)] + 1);

create table person (
    id         bigint generated always as identity primary key,
    name       text not null check (length(name) between 1 and 100),
    phone      text check (length(phone) <= 40),
    email      text check (length(email) <= 200),
    note       text check (length(note) <= 2000),
    created_at timestamptz not null
);

-- Who holds which role on which organisation, and when (both days inclusive).
create table role_assignment (
    id        bigint generated always as identity primary key,
    person_id bigint not null references person (id),
    org_id    bigint not null references org (id),
    role      text not null check (role in ('secretary', 'member', 'coordinator', 'inspector')),
    starts_on date not null,
    ends_on   date,
    acting    boolean not null default false,
    note      text check (length(note) <= 500),
    created_at timestamptz not null,
    check (ends_on is null or ends_on >= starts_on)
);
create index role_assignment_org on role_assignment (org_id, role, starts_on);
create index role_assignment_person on role_assignment (person_id, starts_on);

create table app_user (
    id                  bigint generated always as identity primary key,
    login               text not null unique check (login ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
    person_id           bigint not null unique references person (id),
    password_hash       text not null check (password_hash like '$argon2id$%'),
    is_admin            boolean not null default false,
    locale              text check (locale in ('zh-CN', 'en')),
    disabled_at         timestamptz,
    password_changed_at timestamptz not null,
    created_at          timestamptz not null
);

create table api_token (
    id           bigint generated always as identity primary key,
    user_id      bigint not null references app_user (id),
    token_hash   bytea not null unique check (length(token_hash) = 32),
    label        text not null default '' check (length(label) <= 100),
    created_at   timestamptz not null,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
create index api_token_user on api_token (user_id);

-- Server-side sessions, shared by every app server. The cookie holds a random id;
-- only its hash is stored.
create table session (
    id_hash      bytea primary key check (length(id_hash) = 32),
    user_id      bigint not null references app_user (id),
    csrf_token   text not null,
    created_at   timestamptz not null,
    last_seen_at timestamptz not null,
    ip           text,
    user_agent   text
);
create index session_by_user on session (user_id);

-- Failed sign-ins, for slowing brute force per login and per client address.
create table login_failure (
    id    bigint generated always as identity primary key,
    login text not null,
    ip    text not null,
    at    timestamptz not null
);
create index login_failure_login on login_failure (login, at);
create index login_failure_ip on login_failure (ip, at);

-- Responsibility systems and their rules. A rule's identity (code, cadence, who it binds)
-- never changes; everything else lives in versions that take effect on a date.
create table responsibility_system (
    id         bigint generated always as identity primary key,
    code       text not null unique check (code ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    title      text not null check (length(title) between 1 and 200),
    template   text,
    created_at timestamptz not null
);

create table rule (
    id          bigint generated always as identity primary key,
    system_id   bigint not null references responsibility_system (id),
    code        text not null unique check (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$'),
    position    int not null,
    cadence     text not null check (cadence in ('year', 'half', 'quarter', 'month')),
    binds       text not null default 'organisation' check (binds in ('organisation', 'each_member')),
    record_kind text not null check (record_kind in
                    ('meeting', 'report', 'briefing', 'inspection', 'assessment', 'visit', 'plan')),
    created_at  timestamptz not null,
    unique (system_id, position)
);

create table rule_version (
    id                bigint generated always as identity primary key,
    rule_id           bigint not null references rule (id),
    effective_from    date not null,
    retired           boolean not null default false,
    title             text not null check (length(title) between 1 and 200),
    clause            text not null default '' check (length(clause) <= 100),
    clause_text       text not null default '' check (length(clause_text) <= 5000),
    root_org_id       bigint references org (id),
    responsible_role  text not null default 'secretary'
                          check (responsible_role in ('secretary', 'member', 'coordinator', 'inspector')),
    min_count         int not null check (min_count between 1 and 366),
    grace_days        int not null default 0 check (grace_days between 0 and 366),
    lead_days         int check (lead_days between 0 and 366),
    needs_review      boolean not null,
    created_at        timestamptz not null,
    created_by        bigint references app_user (id),
    unique (rule_id, effective_from)
);

create table rule_version_kind (
    version_id bigint not null references rule_version (id),
    kind       text not null references org_kind (code),
    primary key (version_id, kind)
);
create index rule_version_kind_kind on rule_version_kind (kind);

-- One row per (rule, period) that has started: the version that judges it, its
-- deadlines (the same for every organisation), and whether its duties exist yet.
-- The scheduler's notification sweeps work from here, so idle passes read only this.
create table rule_period (
    rule_id          bigint not null references rule (id),
    period_key       text not null,
    period_start     date not null,
    period_end       date not null,
    version_id       bigint references rule_version (id),
    required         int not null check (required >= 1),
    due_at           timestamptz not null,
    due_soon_at      timestamptz not null,
    materialized_at  timestamptz,
    due_soon_swept_at timestamptz,
    overdue_swept_at  timestamptz,
    primary key (rule_id, period_key),
    check (period_end > period_start),
    check (due_soon_at <= due_at)
);
create index rule_period_key on rule_period (period_key);

-- The settled part of the status table (DESIGN.md section 2), from a duty's counts.
-- Mirrors domain::status::Settled::from_counts; a test keeps the two equal.
create function duty_class(waived boolean, required int, accepted int, nth_accepted_at timestamptz,
                           due_at timestamptz, cancelled boolean, pending int)
    returns text language sql immutable parallel safe
    return case
        when waived then 'waived'
        when accepted >= required and nth_accepted_at is not null
            then case when nth_accepted_at <= due_at then 'fulfilled' else 'late' end
        when cancelled then 'cancelled'
        when accepted + pending >= required then 'submitted'
        else 'pending'
    end;

-- What an organisation (or one leadership member) owes for one rule and period.
create table duty (
    id              bigint generated always as identity primary key,
    org_id          bigint not null references org (id),
    rule_id         bigint not null references rule (id),
    person_id       bigint references person (id),
    period_key      text not null,
    required        int not null check (required >= 1),
    due_at          timestamptz not null,
    accepted        int not null default 0 check (accepted >= 0),
    pending         int not null default 0 check (pending >= 0),
    nth_accepted_at timestamptz,
    cancelled       boolean not null default false,
    waived_at       timestamptz,
    waived_by       bigint references app_user (id),
    waived_reason   text check (length(waived_reason) <= 1000),
    created_at      timestamptz not null,
    class           text not null generated always as
                        (duty_class(waived_at is not null, required, accepted, nth_accepted_at,
                                    due_at, cancelled, pending)) stored,
    foreign key (rule_id, period_key) references rule_period (rule_id, period_key),
    check ((waived_at is null) = (waived_reason is null)),
    check ((accepted >= required) = (nth_accepted_at is not null))
);
create unique index duty_identity on duty (org_id, period_key, rule_id, person_id) nulls not distinct;
create index duty_rule_period on duty (rule_id, period_key, id);
create index duty_person on duty (person_id) where person_id is not null;

-- Per-subtree totals: for every organisation, rule and period, how many duties of the
-- organisation's whole subtree (itself included) are in each settled class. Kept by
-- statement triggers on duty, so rollups read a handful of rows instead of scanning.
-- (No check on n: an insert-on-conflict checks its proposed row, which holds the delta.)
create table duty_total (
    org_id     bigint not null references org (id),
    rule_id    bigint not null references rule (id),
    period_key text not null,
    class      text not null check (class in ('waived', 'fulfilled', 'late', 'cancelled', 'submitted', 'pending')),
    n          bigint not null,
    primary key (org_id, period_key, rule_id, class)
);

create function duty_total_apply_delta() returns trigger language plpgsql as $$
begin
    -- Deltas of the statement's changed rows, added to every ancestor's total. Rows are
    -- locked in one order (ancestors by id) so that concurrent writers cannot deadlock.
    if tg_op = 'INSERT' then
        insert into duty_total as t (org_id, rule_id, period_key, class, n)
        select a.org_id, d.rule_id, d.period_key, d.class, count(*)
        from new_rows d join org o on o.id = d.org_id cross join unnest(o.path) as a(org_id)
        group by 1, 2, 3, 4 order by 1, 2, 3, 4
        on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n;
    elsif tg_op = 'DELETE' then
        insert into duty_total as t (org_id, rule_id, period_key, class, n)
        select a.org_id, d.rule_id, d.period_key, d.class, -count(*)
        from old_rows d join org o on o.id = d.org_id cross join unnest(o.path) as a(org_id)
        group by 1, 2, 3, 4 order by 1, 2, 3, 4
        on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n;
    else
        insert into duty_total as t (org_id, rule_id, period_key, class, n)
        select a.org_id, c.rule_id, c.period_key, c.class, sum(c.delta)
        from (select n.org_id, n.rule_id, n.period_key, n.class, 1 as delta
              from new_rows n join old_rows o using (id) where n.class <> o.class
              union all
              select o.org_id, o.rule_id, o.period_key, o.class, -1
              from new_rows n join old_rows o using (id) where n.class <> o.class) c
        join org o on o.id = c.org_id cross join unnest(o.path) as a(org_id)
        group by 1, 2, 3, 4 having sum(c.delta) <> 0 order by 1, 2, 3, 4
        on conflict (org_id, period_key, rule_id, class) do update set n = t.n + excluded.n;
    end if;
    return null;
end $$;

create trigger duty_total_insert after insert on duty referencing new table as new_rows
    for each statement execute function duty_total_apply_delta();
create trigger duty_total_update after update on duty referencing old table as old_rows new table as new_rows
    for each statement execute function duty_total_apply_delta();
create trigger duty_total_delete after delete on duty referencing old table as old_rows
    for each statement execute function duty_total_apply_delta();

-- What the scheduler works from when liability needs recomputing: every (organisation
-- or member, rule, period) owed under DESIGN.md "Liability", for the rule periods that exist.
create view owed_duty as
select o.id as org_id, rp.rule_id, null::bigint as person_id, rp.period_key, rp.required, rp.due_at,
       (o.active_until is not null and o.active_until < rp.period_end - 1) as cancelled
from rule_period rp
join rule r on r.id = rp.rule_id and r.binds = 'organisation'
join rule_version v on v.id = rp.version_id and not v.retired
join rule_version_kind vk on vk.version_id = v.id
join org o on o.kind = vk.kind
    and o.active_from <= rp.period_start
    and (o.active_until is null or o.active_until >= rp.period_start)
left join org root on root.id = v.root_org_id
where v.root_org_id is null or (o.path >= root.path and o.path < subtree_upper(root.path))
union all
select o.id, rp.rule_id, m.person_id, rp.period_key, rp.required, rp.due_at,
       (o.active_until is not null and o.active_until < rp.period_end - 1)
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
where v.root_org_id is null or (o.path >= root.path and o.path < subtree_upper(root.path));

-- The marker row of the materializer: every rule period that starts before
-- `materialized_through` has its duties.
create table materializer_state (
    id                   boolean primary key default true check (id),
    materialized_through timestamptz
);
insert into materializer_state (materialized_through) values (null);

-- Records: the minutes or report that fulfil a duty.
create table record (
    id                 bigint generated always as identity primary key,
    org_id             bigint not null references org (id),
    rule_id            bigint not null references rule (id),
    person_id          bigint references person (id),
    period_key         text not null,
    occurred_on        date not null,
    state              text not null check (state in ('draft', 'submitted', 'accepted', 'returned', 'withdrawn')),
    version            int not null default 1 check (version >= 1),
    created_by         bigint not null references app_user (id),
    created_at         timestamptz not null,
    first_submitted_at timestamptz,
    submitted_at       timestamptz,
    submitted_by       bigint references app_user (id),
    accepted_at        timestamptz,
    withdrawn_at       timestamptz,
    withdrawn_by       bigint references app_user (id),
    withdrawn_reason   text check (length(withdrawn_reason) <= 1000),
    check (state = 'draft' or state = 'withdrawn' or submitted_at is not null),
    check ((state = 'accepted') <= (accepted_at is not null)),
    check ((state = 'withdrawn') = (withdrawn_at is not null)),
    check ((withdrawn_at is null) = (withdrawn_reason is null))
);
create index record_duty on record (org_id, rule_id, period_key);
create index record_rule_period on record (rule_id, period_key);
create index record_awaiting_review on record (org_id, submitted_at) where state = 'submitted';
create index record_org_recent on record (org_id, created_at desc);

-- Each version of a record's text; the first is the original, later ones corrections.
create table record_version (
    record_id  bigint not null references record (id),
    version    int not null check (version >= 1),
    title      text not null check (length(title) between 1 and 200),
    body       text not null check (length(body) <= 100000),
    attendees  jsonb not null default '[]' check (jsonb_typeof(attendees) = 'array'),
    meeting    jsonb check (meeting is null or jsonb_typeof(meeting) = 'object'),
    created_by bigint not null references app_user (id),
    created_at timestamptz not null,
    primary key (record_id, version)
);

create table record_review (
    id          bigint generated always as identity primary key,
    record_id   bigint not null references record (id),
    reviewer_id bigint not null references app_user (id),
    decision    text not null check (decision in ('accept', 'return')),
    comment     text not null default '' check (length(comment) <= 2000),
    created_at  timestamptz not null,
    check (decision = 'accept' or length(comment) > 0)
);
create index record_review_record on record_review (record_id, created_at);

-- Files are stored once by content hash on disk; this links them to records.
create table attachment (
    id          bigint generated always as identity primary key,
    record_id   bigint not null references record (id),
    sha256      text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint not null check (size >= 0),
    media_type  text not null,
    file_name   text not null check (length(file_name) between 1 and 255),
    uploaded_by bigint not null references app_user (id),
    created_at  timestamptz not null,
    removed_at  timestamptz,
    removed_by  bigint references app_user (id)
);
create index attachment_record on attachment (record_id);

-- Notification events: at most one per duty and kind, ever.
create table notification_event (
    id         bigint generated always as identity primary key,
    duty_id    bigint not null references duty (id),
    kind       text not null check (kind in ('due_soon', 'overdue')),
    created_at timestamptz not null,
    unique (duty_id, kind)
);

create table notification (
    event_id bigint not null references notification_event (id),
    user_id  bigint not null references app_user (id),
    read_at  timestamptz,
    mailed_at timestamptz,
    primary key (user_id, event_id)
);
create index notification_unread on notification (user_id) where read_at is null;

-- The append-only audit log. Rows are written in the same transaction as the change
-- they describe; a sealer chains them afterwards (seal_no, prev_hash, hash) in the
-- order it finds them committed, so writers never wait on one row.
create table audit_log (
    id          bigint generated always as identity primary key,
    at          timestamptz not null,
    actor_id    bigint references app_user (id),
    actor       text not null,
    action      text not null check (length(action) between 1 and 64),
    object_type text not null,
    object_id   text not null,
    org_id      bigint references org (id),
    detail      jsonb not null default '{}',
    ip          text,
    seal_no     bigint unique,
    prev_hash   bytea,
    hash        bytea,
    check ((seal_no is null) = (hash is null))
);
create index audit_log_unsealed on audit_log (id) where seal_no is null;
create index audit_log_at on audit_log (at desc);
create index audit_log_org on audit_log (org_id, at desc);
create index audit_log_actor on audit_log (actor_id, at desc);
create index audit_log_object on audit_log (object_type, object_id, at);

-- The last sealed entry, so that removing entries from the end of the chain shows too.
create table audit_head (
    id      boolean primary key default true check (id),
    seal_no bigint not null default 0,
    hash    bytea
);
insert into audit_head default values;

create function audit_log_append_only() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' or tg_op = 'TRUNCATE' then
        raise exception 'the audit log is append-only';
    end if;
    -- The only update allowed is sealing an unsealed row, once.
    if old.seal_no is not null
       or (new.id, new.at, new.actor_id, new.actor, new.action, new.object_type, new.object_id,
           new.org_id, new.detail, new.ip)
          is distinct from
          (old.id, old.at, old.actor_id, old.actor, old.action, old.object_type, old.object_id,
           old.org_id, old.detail, old.ip) then
        raise exception 'the audit log is append-only';
    end if;
    return new;
end $$;

create trigger audit_log_no_update before update or delete on audit_log
    for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_append_only();
