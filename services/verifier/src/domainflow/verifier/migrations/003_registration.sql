-- The registration and delegation watch: what each zone's NS set and registration expiry
-- were when last looked at (at most once per DOMAINFLOW_REGISTRATION_INTERVAL per zone).
CREATE TABLE registration (
    zone         text PRIMARY KEY,
    nameservers  text[] NOT NULL,             -- sorted; empty when the lookup failed
    expires_at   timestamptz,                 -- NULL when RDAP is off or did not say
    checked_at   timestamptz NOT NULL
);
