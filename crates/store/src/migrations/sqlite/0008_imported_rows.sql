-- Rows carried over from another gateway by `tollgate import`, by their id there (a key by its
-- hash): a row imported once is not imported again, even after it was changed, rotated or
-- deleted here.
CREATE TABLE imported_rows (
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (source, kind, source_id)
);
