-- subtree_upper was declared strict over a non-strict body (`||` takes nulls), so
-- PostgreSQL could not inline it and ran it as a SQL function call on every row it was
-- compared against: in owed_duty, once per owed duty (a tenth of a first tick's time).
-- Not strict, and null for a null path as before, it is inlined into each query.
create or replace function subtree_upper(p bigint[]) returns bigint[]
    language sql immutable parallel safe
    return case when p is not null then p[1:cardinality(p) - 1] || (p[cardinality(p)] + 1) end;
