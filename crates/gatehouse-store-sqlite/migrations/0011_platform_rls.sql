-- PostgreSQL's migration 0011 puts the platform tables under row-level security; SQLite has none
-- (the scope and the behaviour suite carry the guarantee there). This keeps the two backends'
-- migration numbers aligned.
SELECT 1;
