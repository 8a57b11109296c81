-- Functions only the server calls (as nchat_admin or the login role): request roles may not execute them.
-- Earlier migrations revoked some of these from PUBLIC and later blanket grants gave them back; this states
-- the rule once, by name, and tests/security/test_permission_matrix.py checks it against the catalog from
-- db/permissions.py SERVER_ONLY_FUNCTIONS.
REVOKE ALL ON FUNCTION
  nchat.mod_log(uuid, uuid, text, uuid, uuid, jsonb),
  nchat.publish_admission(uuid),
  nchat.simulcast_targets(uuid),
  nchat.retire_quality_partition(text, bigint),
  nchat.ensure_change_triggers(),
  nchat.engagement_refresh(uuid, integer)
FROM PUBLIC, nchat_anonymous, nchat_user, nchat_moderator;

GRANT EXECUTE ON FUNCTION
  nchat.mod_log(uuid, uuid, text, uuid, uuid, jsonb),
  nchat.publish_admission(uuid),
  nchat.simulcast_targets(uuid),
  nchat.retire_quality_partition(text, bigint),
  nchat.engagement_refresh(uuid, integer)
TO nchat_admin;
