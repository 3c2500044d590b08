-- The sweeper of chat-media (issue #16) deletes the objects of orphaned attachments (their
-- message was deleted, or they were never completed or never sent), then the rows. This index
-- finds them without reading the table. Every statement can run again.
CREATE INDEX IF NOT EXISTS attachments_orphaned_idx ON attachments (id) WHERE state = 'orphaned';
