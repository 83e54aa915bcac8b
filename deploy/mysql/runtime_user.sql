-- sales_platform: the least-privilege MySQL / MariaDB user the pipeline runs as.
--
-- Run once as an administrator, AFTER `sales-platform db init` has created the tables (the
-- runtime user has no DDL rights, and MySQL refuses table grants on tables that do not exist).
-- Placeholders are filled from the environment by envsubst, so the password never appears in a
-- command line or in this file:
--
--   export RUNTIME_USER=sales_platform RUNTIME_HOST='%' SOURCE_DB=sales WAREHOUSE_DB=sales
--   read -rs RUNTIME_PASSWORD && export RUNTIME_PASSWORD      # no quote or backslash in it
--   envsubst < deploy/mysql/runtime_user.sql | mysql -h <host> -u <admin> -p
--
-- or, with any password: `sales-platform db grant-runtime-user` (reads the password on stdin,
-- sends it as a bound parameter; statements come from this file).
-- Re-running it resets the password and the grants to exactly these.
--
-- What the pipeline does with each table:
--   source tables     read the master data for the dimension snapshots
--   marts             replace a month: SELECT + DELETE + INSERT in one transaction
--   ledger            one row per file version: INSERT, then UPDATE of its status
--   iceberg_*         the lake's Iceberg catalog: a commit is a compare-and-swap UPDATE
-- No CREATE, ALTER, DROP, INDEX, REFERENCES, GRANT, FILE or PROCESS: a stolen runtime password
-- can neither change the schema nor read or write other databases.

CREATE USER IF NOT EXISTS '${RUNTIME_USER}'@'${RUNTIME_HOST}' IDENTIFIED BY '${RUNTIME_PASSWORD}';
ALTER USER '${RUNTIME_USER}'@'${RUNTIME_HOST}' IDENTIFIED BY '${RUNTIME_PASSWORD}';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM '${RUNTIME_USER}'@'${RUNTIME_HOST}';

GRANT SELECT ON `${SOURCE_DB}`.`customer` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT ON `${SOURCE_DB}`.`store` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT ON `${SOURCE_DB}`.`product` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT ON `${SOURCE_DB}`.`sales_team` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';

GRANT SELECT, INSERT, DELETE ON `${WAREHOUSE_DB}`.`customers_data_mart` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT, INSERT, DELETE ON `${WAREHOUSE_DB}`.`sales_team_data_mart` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT, INSERT, UPDATE, DELETE ON `${WAREHOUSE_DB}`.`product_staging_table` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT, INSERT, UPDATE, DELETE ON `${WAREHOUSE_DB}`.`iceberg_tables` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
GRANT SELECT, INSERT, UPDATE, DELETE ON `${WAREHOUSE_DB}`.`iceberg_namespace_properties` TO '${RUNTIME_USER}'@'${RUNTIME_HOST}';
