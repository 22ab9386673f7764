-- The materializer counts each rule period's accepted and submitted records per duty.
-- Through (rule_id, period_key) alone that read one heap page per record, scattered over
-- the whole table (13,700 pages for one rule period of a 100,000-organisation tree); with
-- the duty's identity and the two counted columns in the index it is an index-only scan
-- of one contiguous range.
drop index record_rule_period;
create index record_rule_period on record (rule_id, period_key, org_id, person_id) include (state, submitted_at);
