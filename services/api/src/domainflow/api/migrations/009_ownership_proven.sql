-- When a verification first saw the domain's ownership TXT: until then the mail server holds
-- the name without accepting mail for it. Domains verified before this column existed had
-- their TXT seen then; the others were put live on the mail server at provisioning, as the
-- rule was, and are asked again (harmlessly) once their TXT is seen.
ALTER TABLE domains ADD COLUMN ownership_proven_at timestamptz;
UPDATE domains SET ownership_proven_at = verified_at WHERE verified_at IS NOT NULL;
