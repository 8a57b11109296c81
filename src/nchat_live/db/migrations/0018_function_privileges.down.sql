GRANT EXECUTE ON FUNCTION
  nchat.mod_log(uuid, uuid, text, uuid, uuid, jsonb),
  nchat.engagement_refresh(uuid, integer)
TO PUBLIC;
