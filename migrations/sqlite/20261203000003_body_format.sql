-- The format of the JSON bodies the store holds (staged objects, GAL
-- entries, plans, audit records): 1 is the encoding of the model's serde
-- types as of 2026-11, read with defaults for fields added since. A coexist
-- that reads an older format only decodes; one that finds a newer format
-- refuses to open the store (coexist::store::BODY_FORMAT).
INSERT INTO meta (key, value) VALUES ('body_format', 1);
