-- The unsettled duties of each period, by deadline and organisation: what the subtree
-- overview reads to list the first overdue duties of a large subtree without probing
-- each of its organisations. Holds only the `pending` class, so it stays as small as
-- the work still outstanding.
create index duty_pending on duty (period_key, due_at, org_id) where class = 'pending';
