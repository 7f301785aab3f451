-- The portal's audit log page (issue 10, SPEC §5.1) lists one site's entries newest first,
-- narrowed by who acted, by the action and by time. Without these, a rare actor or action
-- would walk the site's whole log to fill a page. (An entry's target, a recording, already
-- has `audit_log_target`.)
CREATE INDEX audit_log_site_actor ON audit_log (site_id, actor, seq);
CREATE INDEX audit_log_site_action ON audit_log (site_id, action, seq);
CREATE INDEX audit_log_site_at ON audit_log (site_id, at);
