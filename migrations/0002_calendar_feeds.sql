-- Personal calendar feeds (.ics): a calendar program fetches /feeds/{token}.ics without a
-- session, so the random token in the URL is the credential. Only its SHA-256 is kept;
-- a user has at most one live feed, and regenerating or stopping it revokes the old URL.
create table calendar_feed (
    id           bigint generated always as identity primary key,
    user_id      bigint not null references app_user (id),
    token_hash   bytea not null unique check (length(token_hash) = 32),
    created_at   timestamptz not null,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
create unique index calendar_feed_live on calendar_feed (user_id) where revoked_at is null;
