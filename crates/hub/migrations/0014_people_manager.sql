-- A person's manager as the IdP provisions it (SCIM's enterprise extension
-- `manager.value`: the manager's id, external id, user name or email), for approvals
-- policy routes to `manager` (issue 19). Resolved to the manager's email when needed.
ALTER TABLE people ADD COLUMN manager TEXT;
