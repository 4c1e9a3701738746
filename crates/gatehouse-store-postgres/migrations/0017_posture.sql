-- The posture report (H3, issue 25) counts stored password hashes below the configured Argon2
-- cost (A1's self-check). Like the pruning job, the census is a job that reads across subjects:
-- it declares gatehouse.job = 'password_census' and may then read accounts, never change them.
CREATE POLICY password_census ON users FOR SELECT
    USING (gatehouse_current_job() = 'password_census');
