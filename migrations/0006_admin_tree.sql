-- Administration of the tree and of people: search by code prefix, "is this kind in
-- use", and people listed by name, each served by an index instead of a scan.

-- Codes are ASCII, so the "C" order of the lower-cased code is a prefix order: the codes
-- that start with `p` are the range [p, p || '~').
create index org_code_prefix on org ((lower(code)) collate "C");
create index org_by_kind on org (kind);
create index person_by_name on person (name, id);
