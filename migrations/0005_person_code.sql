-- A stable key for people, so that importing the same people file twice changes nothing
-- and a roles file can name people (`人员编号`). Optional: people created with a user
-- account have none until an import gives them one.
alter table person add column code text unique check (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
