DROP FUNCTION nchat.engagement_refresh(uuid, integer);
DROP TABLE nchat_stream_chapters;
DROP TABLE nchat_stream_highlights;
DROP TABLE nchat_stream_engagement;
DROP FUNCTION nchat.chapter_preset();
DROP FUNCTION nchat.highlight_decided();
