-- Whether a function's URL (`/fn/{name}`) calls it, and who may: off, key or public.
ALTER TABLE functions ADD COLUMN http TEXT NOT NULL DEFAULT 'off';
