DROP TABLE IF EXISTS nchat_media_leases, nchat_media_workers;
