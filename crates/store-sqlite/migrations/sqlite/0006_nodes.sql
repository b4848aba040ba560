-- Which cluster node ran each execution (NULL on a single-node fnbox, and for older records).
ALTER TABLE executions ADD COLUMN node TEXT;
