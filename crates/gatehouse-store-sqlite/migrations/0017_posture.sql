-- PostgreSQL's migration 0017 lets the posture report's password census read every account
-- through row-level security; SQLite has none. This keeps the two backends' migration numbers
-- aligned.
SELECT 1;
